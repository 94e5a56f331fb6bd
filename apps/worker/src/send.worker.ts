import { type Config, deriveKeys, type Logger, type SmsProvider, tablePrice } from '@otp-gateway/core';
import { createProviders } from '@otp-gateway/providers';
import {
  circuitSettings,
  createCircuits,
  createDeliveryRepo,
  createMessageIndex,
  createReportRepo,
  createSendQueues,
  enqueueResend,
  type Keyspace,
  parseDeliveryReport,
  type RedisClient,
  type SendJobData,
  type SendJobKind,
  startSweeper,
  workerKeepJobs,
} from '@otp-gateway/store';
import { Worker } from 'bullmq';
import { createWorkerMetrics, type WorkerMetrics } from './metrics.js';
import { createSendProcessor } from './send-otp.processor.js';

export interface SendWorkerDeps {
  readonly config: Config;
  /** BullMQ's connection (queues, job state), also the default for the store's scripts. */
  readonly redis: RedisClient;
  /**
   * The store's scripts of a send (pick, start, accept, circuits, message index), on a connection of their own that
   * pipelines the commands of concurrent sends into one write (see connection.ts); BullMQ's stays unpipelined.
   */
  readonly scripts?: RedisClient;
  readonly ks: Keyspace;
  readonly log: Logger & { child(b: object): Logger };
  /** The providers to send through; by default built from the configuration (SMS_PROVIDERS). */
  readonly providers?: readonly SmsProvider[];
  readonly metrics?: WorkerMetrics;
}

/** A running send worker: one BullMQ worker per queue shard, its metrics, and how to stop it. */
export interface SendWorker {
  readonly workers: readonly Worker<SendJobData, void, SendJobKind>[];
  readonly metrics: WorkerMetrics;
  isRunning(): boolean;
  /** Lets in-flight sends finish, aborting them past `deadlineMs`; closes what it opened (not the connection). */
  close(deadlineMs: number): Promise<void>;
}

/** Wires and starts the send worker on a connection (built apart from main.ts, which handles process concerns). */
export async function startSendWorker(deps: SendWorkerDeps): Promise<SendWorker> {
  const { config, redis, ks, log } = deps;
  const scripts = deps.scripts ?? redis;

  const shutdown = new AbortController();
  const list =
    deps.providers ??
    createProviders(config.providers, {
      statusCallbackUrl: config.webhooks.publicBaseUrl
        ? `${config.webhooks.publicBaseUrl}/webhooks/twilio/status`
        : null,
    });
  const providers = new Map(list.map((p) => [p.id, p]));
  const circuits = createCircuits(scripts, ks, circuitSettings(config));
  const messages = createMessageIndex(scripts, ks);
  const delivery = createDeliveryRepo(
    { redis: scripts, ks, circuits, messages },
    {
      leaseMs: config.providers.timeoutMs + 2000,
      // Receipts are expected only when the callbacks process is reachable by the providers.
      receiptAfterMs: config.webhooks.publicBaseUrl ? config.worker.deliveryTimeoutSeconds * 1000 : 0,
      messageTtlMs: (config.otp.ttlSeconds + config.otp.recordRetentionSeconds) * 1000,
    },
  );
  const metrics = deps.metrics ?? createWorkerMetrics(() => circuits.states(config.providers.order));
  const queues = createSendQueues(redis, ks, config.queues);
  const reports = createReportRepo({ redis: scripts, ks, messages, circuits });
  const applyEarlyReports = async (raw: string[], jobLog: Logger) => {
    for (const json of raw) {
      const report = parseDeliveryReport(json);
      if (!report) continue;
      const r = await reports.apply(report);
      jobLog.info(
        { provider: report.provider, status: report.status, result: r.kind },
        'early delivery report applied',
      );
      if (r.kind === 'applied' && r.resend) await enqueueResend(queues, r.resend.otpId, r.resend.after);
    }
  };
  const processor = createSendProcessor({
    providers,
    order: config.providers.defaultRoute.filter((p) => providers.has(p)),
    priceOf: (provider, country) => tablePrice(config.providers, provider, country),
    routes: new Map([...config.providers.routes].map(([cc, order]) => [cc, order.filter((p) => providers.has(p))])),
    delivery,
    keys: deriveKeys(config.otpSecret),
    log,
    metrics,
    shutdown: shutdown.signal,
    applyEarlyReports,
  });

  // Every shard is consumed, each with WORKER_CONCURRENCY sends in flight: a shared budget would let the OTPs
  // that happen to land on one shard wait while the others idle.
  const workers = queues.shards.map((queue) => {
    const worker = new Worker<SendJobData, void, SendJobKind>(queue.name, processor, {
      connection: redis,
      prefix: queue.opts.prefix,
      concurrency: config.worker.concurrency,
      lockDuration: config.worker.lockMs,
      stalledInterval: Math.max(1000, Math.floor(config.worker.lockMs / 2)),
      maxStalledCount: 3,
      ...workerKeepJobs(config.queues),
    });
    worker.on('error', (err) => log.error({ queue: queue.name, err: { message: err.message } }, 'worker error'));
    worker.on('failed', (job, err) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
        log.warn({ otpId: job.data.otpId, reason: err.message }, 'send job failed for good');
      }
    });
    return worker;
  });

  // The safety net: jobs that never started, receipts that never came (see the store's sweep).
  const sweeper = startSweeper(
    {
      redis,
      ks,
      queues,
      circuits,
      onFailed: (_otpId, cc) => metrics.funnel.inc({ stage: 'failed', provider: 'none', cc }),
      onNoReceipt: (provider) => metrics.attemptFailures.inc({ provider, kind: 'no_receipt' }),
    },
    {
      onRound: (r) => {
        if (r.queued > 0 || r.gaveUp > 0 || r.receiptTimeouts > 0 || r.errors > 0)
          log.warn({ ...r }, 'sweep queued or ended OTPs');
      },
      onError: (err) =>
        log.warn({ err: { message: err instanceof Error ? err.message : String(err) } }, 'sweep failed'),
    },
  );
  await Promise.all(workers.map((w) => w.waitUntilReady()));

  return {
    workers,
    metrics,
    isRunning: () => workers.every((w) => w.isRunning()),
    async close(deadlineMs) {
      sweeper.stop();
      const deadline = setTimeout(() => {
        log.warn({ deadlineMs }, 'shutdown deadline reached; aborting in-flight sends');
        shutdown.abort();
        for (const w of workers) void w.close(true);
      }, deadlineMs);
      await Promise.all(workers.map((w) => w.close()));
      clearTimeout(deadline);
      await queues.close();
    },
  };
}
