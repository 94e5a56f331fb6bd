import {
  type Config,
  deriveKeys,
  type Logger,
  type ProviderId,
  QUEUES,
  type SendJobData,
  type SmsProvider,
} from '@otp-gateway/core';
import { createProviders } from '@otp-gateway/providers';
import {
  createCallbackRepo,
  createDeliveryRepo,
  createSendQueue,
  MIN_RESEND_LIFE_MS,
  parseDeliveryReport,
  resendJobId,
  sweepUnstarted,
} from '@otp-gateway/store';
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { otpBackoff } from './backoff.js';
import { createWorkerMetrics, type WorkerMetrics } from './metrics.js';
import { createSendProcessor } from './send-otp.processor.js';

/** An SMS is not sent when the OTP has less life than this left. */
const MIN_LIFE_MS = 5000;

export interface SendWorkerDeps {
  readonly config: Config;
  readonly redis: Redis;
  readonly log: Logger & { child(b: object): Logger };
  /** The providers to send through; by default built from the configuration (SMS_PROVIDERS). */
  readonly providers?: readonly SmsProvider[];
  readonly metrics?: WorkerMetrics;
}

/** A running send worker: the BullMQ worker, its metrics, and how to stop it. */
export interface SendWorker {
  readonly worker: Worker<SendJobData>;
  readonly metrics: WorkerMetrics;
  /** Lets in-flight sends finish, aborting them past `deadlineMs`; closes what it opened (not the connection). */
  close(deadlineMs: number): Promise<void>;
}

/** Wires and starts the send worker on a connection (built apart from main.ts, which handles process concerns). */
export async function startSendWorker(deps: SendWorkerDeps): Promise<SendWorker> {
  const { config, redis, log } = deps;

  const shutdown = new AbortController();
  const list =
    deps.providers ??
    createProviders(config.providers, {
      statusCallbackUrl: config.webhooks.publicBaseUrl
        ? `${config.webhooks.publicBaseUrl}/webhooks/twilio/status`
        : null,
    });
  const providers = new Map(list.map((p) => [p.id, p]));
  const delivery = createDeliveryRepo(
    redis,
    {
      failureThreshold: config.worker.circuitFailureThreshold,
      cooldownMs: config.worker.circuitCooldownSeconds * 1000,
      leaseMs: config.providers.timeoutMs + 2000,
    },
    config.providers.ratePerSecond,
  );
  const metrics = deps.metrics ?? createWorkerMetrics(() => delivery.circuits(config.providers.order, Date.now()));
  const queue = createSendQueue(redis);
  const timeoutMs = config.worker.deliveryTimeoutSeconds * 1000;
  // Receipts are expected only when the callbacks process is reachable by the providers.
  const scheduleReceiptCheck = config.webhooks.publicBaseUrl
    ? async (data: SendJobData, attempt: number, provider: ProviderId) => {
        if (data.expiresAt - Date.now() - timeoutMs <= MIN_RESEND_LIFE_MS) return;
        await queue.add(
          'send',
          { ...data, checkReceiptOf: { attempt, provider } },
          { jobId: `${data.otpId}-t${attempt}`, delay: timeoutMs },
        );
      }
    : null;
  const callbacks = createCallbackRepo(redis);
  const applyEarlyReports = async (reports: string[], jobLog: Logger) => {
    for (const raw of reports) {
      const report = parseDeliveryReport(raw);
      if (!report) continue;
      const r = await callbacks.apply(report, Date.now());
      jobLog.info(
        { provider: report.provider, status: report.status, result: r.kind },
        'early delivery report applied',
      );
      if (r.kind === 'applied' && r.resend) {
        await queue.add('send', r.resend, { jobId: resendJobId(r.otpId, r.attempt) });
      }
    }
  };
  const processor = createSendProcessor({
    providers,
    order: config.providers.order.filter((p) => providers.has(p)),
    delivery,
    keys: deriveKeys(config.otpSecret),
    log,
    metrics,
    shutdown: shutdown.signal,
    minLifeMs: MIN_LIFE_MS,
    scheduleReceiptCheck,
    applyEarlyReports,
  });

  const worker = new Worker<SendJobData>(QUEUES.send, processor, {
    connection: redis,
    concurrency: config.worker.concurrency,
    lockDuration: config.worker.lockMs,
    stalledInterval: Math.max(1000, Math.floor(config.worker.lockMs / 2)),
    maxStalledCount: 3,
    settings: { backoffStrategy: otpBackoff },
  });
  worker.on('error', (err) => log.error({ err: { message: err.message } }, 'worker error'));
  worker.on('failed', (job, err) => {
    if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
      log.warn({ otpId: job.data.otpId, reason: err.message }, 'send job failed for good');
    }
  });

  // Accepted OTPs whose job was never added (the API lost Redis or stopped in between) still go out.
  const sweeper = setInterval(() => {
    sweepUnstarted(redis, queue, { now: Date.now(), delivery })
      .then((n) => n > 0 && log.warn({ queued: n }, 'queued send jobs that were missing'))
      .catch((err: Error) => log.warn({ err: { message: err.message } }, 'unstarted sweep failed'));
  }, 5000);
  sweeper.unref();
  await worker.waitUntilReady();

  return {
    worker,
    metrics,
    async close(deadlineMs) {
      clearInterval(sweeper);
      const deadline = setTimeout(() => {
        log.warn({ deadlineMs }, 'shutdown deadline reached; aborting in-flight sends');
        shutdown.abort();
        void worker.close(true);
      }, deadlineMs);
      await worker.close();
      clearTimeout(deadline);
      await queue.close().catch(() => {});
    },
  };
}
