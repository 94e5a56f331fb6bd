import 'dotenv/config';
import {
  deriveKeys,
  type Logger,
  loadConfig,
  logFormat,
  type ProviderId,
  QUEUES,
  type SendJobData,
} from '@otp-gateway/core';
import { createProviders } from '@otp-gateway/providers';
import {
  checkRedisConfig,
  createCallbackRepo,
  createDeliveryRepo,
  createRedis,
  createSendQueue,
  parseDeliveryReport,
  refuseToStart,
  resendJobId,
  sweepUnstarted,
} from '@otp-gateway/store';
import { Worker } from 'bullmq';
import { pino } from 'pino';
import { otpBackoff } from './backoff.js';
import { startHealthServer } from './health.server.js';
import { createWorkerMetrics } from './metrics.js';
import { createSendProcessor } from './send-otp.processor.js';

async function main() {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env, 'worker');
  } catch (e) {
    refuseToStart('worker', e);
  }
  const log = pino({ level: config.logLevel, base: { app: 'worker', pid: process.pid }, ...logFormat(config) });
  const redis = createRedis(config.redisUrl, 'worker', 'otp-worker');
  await checkRedisConfig(redis, { env: config.env, log: log, readyTimeoutMs: 5000 }).catch((e) =>
    refuseToStart('worker', e),
  );
  const metrics = createWorkerMetrics();
  const shutdown = new AbortController();
  const list = createProviders(config.providers, {
    statusCallbackUrl: config.webhooks.publicBaseUrl ? `${config.webhooks.publicBaseUrl}/webhooks/twilio/status` : null,
  });
  const providers = new Map(list.map((p) => [p.id, p]));
  const delivery = createDeliveryRepo(
    redis,
    {
      failureThreshold: config.worker.circuitFailureThreshold,
      cooldownMs: config.worker.circuitCooldownSeconds * 1000,
    },
    config.providers.ratePerSecond,
  );
  const queue = createSendQueue(redis);
  const timeoutMs = config.worker.deliveryTimeoutSeconds * 1000;
  const minLifeMs = 5000;
  // Receipts are expected only when the callbacks process is reachable by the providers.
  const scheduleReceiptCheck = config.webhooks.publicBaseUrl
    ? async (data: SendJobData, attempt: number, provider: ProviderId) => {
        if (data.expiresAt - Date.now() - timeoutMs < minLifeMs + 10_000) return;
        await queue.add(
          'send',
          { ...data, checkReceiptOf: { attempt, provider } },
          {
            jobId: `${data.otpId}-t${attempt}`,
            delay: timeoutMs,
          },
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
    order: config.providers.order,
    delivery,
    keys: deriveKeys(config.otpSecret),
    log,
    metrics,
    shutdown: shutdown.signal,
    minLifeMs,
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

  const health = config.worker.metricsPort
    ? await startHealthServer({
        port: config.worker.metricsPort,
        host: config.host,
        registry: metrics.registry,
        ready: async () => (await redis.ping()) === 'PONG' && worker.isRunning(),
      })
    : null;

  // Accepted OTPs whose job was never added (the API lost Redis or stopped in between) still go out.
  const sweeper = setInterval(() => {
    sweepUnstarted(redis, queue, { now: Date.now() })
      .then((n) => n > 0 && log.warn({ queued: n }, 'queued send jobs that were missing'))
      .catch((err: Error) => log.warn({ err: { message: err.message } }, 'unstarted sweep failed'));
  }, 5000);
  sweeper.unref();

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    clearInterval(sweeper);
    log.info({ signal, deadlineMs: config.worker.shutdownTimeoutMs }, 'worker stopping; finishing in-flight sends');
    const deadline = setTimeout(() => {
      log.warn('shutdown deadline reached; aborting in-flight sends');
      shutdown.abort();
      void worker.close(true);
    }, config.worker.shutdownTimeoutMs);
    await worker.close();
    clearTimeout(deadline);
    await queue.close().catch(() => {});
    health?.close();
    redis.disconnect();
    log.info('worker stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  await worker.waitUntilReady();
  log.info(
    {
      providers: config.providers.order,
      concurrency: config.worker.concurrency,
      metricsPort: config.worker.metricsPort,
    },
    'worker started',
  );
}

main().catch((e) => {
  process.stderr.write(`otp-gateway worker failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
