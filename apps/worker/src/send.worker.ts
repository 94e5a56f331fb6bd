import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Config,
  deriveKeys,
  type Logger,
  PROVIDER_IDS,
  type ProviderId,
  type SmsProvider,
  tablePrice,
} from '@otp-gateway/core';
import { compileTemplates, createProviders, type OtpTemplates } from '@otp-gateway/providers';
import { postWebhook, type TenantRegistry, type WebhookTarget } from '@otp-gateway/service';
import {
  circuitSettings,
  createCircuits,
  createDeliveryRepo,
  createMessageIndex,
  createReportRepo,
  createSendQueues,
  createStatusEventQueue,
  createStatusEvents,
  enqueueResend,
  type Keyspace,
  type MessageRef,
  type ProviderRoutes,
  parseDeliveryReport,
  type RedisClient,
  reportStoreError,
  type SendJobData,
  type SendJobKind,
  type StatusEventJob,
  startSweeper,
  workerKeepJobs,
} from '@otp-gateway/store';
import { Worker } from 'bullmq';
import { createWorkerMetrics, type WorkerMetrics } from './metrics.js';
import { createSendProcessor } from './send-otp.processor.js';
import { createStatusEventMetrics } from './status-event.metrics.js';
import { createStatusEventProcessor, webhookBackoff } from './status-event.processor.js';

export interface SendWorkerDeps {
  readonly config: Config;
  /** BullMQ's connection (queues, job state), also the default for the store's scripts. */
  readonly redis: RedisClient;
  /**
   * The store's scripts of a send (pick, start, accept, circuits, message index), on a connection of their own: a
   * job's steps do not queue behind BullMQ's commands on its connection (none is auto-pipelined: connection.ts).
   */
  readonly scripts?: RedisClient;
  readonly ks: Keyspace;
  readonly log: Logger & { child(b: object): Logger };
  /** The providers to send through; by default built from the configuration (SMS_PROVIDERS). */
  readonly providers?: readonly SmsProvider[];
  readonly metrics?: WorkerMetrics;
  /** Settings per API key (TENANTS_FILE): templates, brand, webhook endpoint over the gateway-wide ones. */
  readonly tenants?: TenantRegistry;
}

/** A running send worker: one BullMQ worker per queue shard, its metrics, and how to stop it. */
export interface SendWorker {
  readonly workers: readonly Worker<SendJobData, void, SendJobKind>[];
  /** Delivers status events (the `otp-events` queue). */
  readonly eventWorker: Worker<StatusEventJob, void, string>;
  readonly metrics: WorkerMetrics;
  isRunning(): boolean;
  /** Lets in-flight sends finish, aborting them past `deadlineMs`; closes what it opened (not the connection). */
  close(deadlineMs: number): Promise<void>;
}

/**
 * The providers whose delivery receipts can reach the callbacks app: Twilio's come to the StatusCallback each send
 * names (none without PUBLIC_WEBHOOK_BASE_URL), or to the one set on its messaging service
 * (TWILIO_MESSAGING_SERVICE_SID: the worker cannot tell, so it counts on it); Octopush's to the URL set in its account, whose path carries
 * OCTOPUSH_WEBHOOK_TOKEN (without one, the callbacks app refuses them all). Another provider's accepted message
 * awaits no receipt, and its message id is not indexed.
 */
export function receiptProviders(config: Pick<Config, 'webhooks' | 'providers'>): ReadonlySet<ProviderId> {
  const twilio = config.webhooks.publicBaseUrl !== null || Boolean(config.providers.twilio?.messagingServiceSid);
  return new Set(PROVIDER_IDS.filter((p) => (p === 'octopush' ? config.webhooks.octopushTokens.length > 0 : twilio)));
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
      callbackNamesAttempt: config.webhooks.twilioCallbackNamesAttempt,
    });
  const providers = new Map(list.map((p) => [p.id, p]));
  // checked at start by main.ts (one message naming every problem); compiled once here
  const templates = compileTemplates(config.messages, {
    maxCodeLength: config.otp.codeLength,
    maxTtlSeconds: config.otp.ttlSeconds,
  });
  // per key (TENANTS_FILE): compiled once per settings in force, again after each reload
  const perKey = new Map<string, OtpTemplates>();
  deps.tenants?.onChange(() => perKey.clear());
  const templatesFor = (keyName: string): OtpTemplates => {
    const t = deps.tenants?.get(keyName);
    if (!t || (t.brand === null && Object.keys(t.templates).length === 0)) return templates;
    let compiled = perKey.get(keyName);
    if (!compiled) {
      compiled = compileTemplates(
        {
          brand: t.brand ?? config.messages.brand,
          appHash: config.messages.appHash,
          templates: { ...config.messages.templates, ...t.templates },
        },
        { maxCodeLength: t.codeLength ?? config.otp.codeLength, maxTtlSeconds: t.ttlSeconds ?? config.otp.ttlSeconds },
      );
      perKey.set(keyName, compiled);
    }
    return compiled;
  };
  const circuits = createCircuits(scripts, ks, circuitSettings(config));
  const messages = createMessageIndex(scripts, ks);
  const eventQueue = createStatusEventQueue(redis, ks);
  const events = createStatusEvents({ redis: scripts, ks, queue: eventQueue });
  const onEventError = (err: unknown) =>
    log.warn(
      { err: { message: err instanceof Error ? err.message : String(err) } },
      'status event not queued; the sweep will queue it',
    );
  const delivery = createDeliveryRepo(
    { redis: scripts, ks, circuits, messages, events, onEventError },
    {
      leaseMs: config.providers.timeoutMs + 2000,
      // Receipts are expected only when the callbacks process is reachable by the providers (and, per provider,
      // when its callbacks can be accepted: receiptProviders).
      receiptAfterMs: config.webhooks.publicBaseUrl ? config.worker.deliveryTimeoutSeconds * 1000 : 0,
      receiptsFrom: receiptProviders(config),
      messageTtlMs: (config.otp.ttlSeconds + config.otp.recordRetentionSeconds) * 1000,
    },
  );
  const metrics = deps.metrics ?? createWorkerMetrics(() => circuits.states(config.providers.order));
  const queues = createSendQueues(redis, ks, config.queues);
  const reports = createReportRepo({ redis: scripts, ks, messages, circuits, events, onEventError });
  // each report applies to the attempt that was just recorded (its message's: the ACCEPT step or the message
  // index handed it over), so the index is not looked up again
  const applyEarlyReports = async (raw: string[], ref: MessageRef, jobLog: Logger) => {
    for (const json of raw) {
      const report = parseDeliveryReport(json);
      if (!report) continue;
      const r = await reports.apply(report, ref);
      jobLog.info(
        { provider: report.provider, status: report.status, result: r.kind },
        'early delivery report applied',
      );
      if (r.kind === 'applied' && r.resend) await enqueueResend(queues, r.resend.otpId, r.resend.after);
    }
  };
  // SMS_ROUTES by country, and each API key's own routes (TENANTS_FILE) as `<key>|<country or *>`: rebuilt when the
  // key settings are reloaded (the plan script picks the key's, then the country's, then the default order)
  const configured = (order: readonly string[]) => order.filter((p): p is ProviderId => providers.has(p as ProviderId));
  const buildRoutes = (): ProviderRoutes => {
    const m = new Map<string, readonly ProviderId[]>();
    for (const [cc, order] of config.providers.routes) m.set(cc, configured(order));
    for (const t of deps.tenants?.current().byName.values() ?? []) {
      for (const [cc, order] of t.routes) m.set(`${t.name}|${cc}`, configured(order));
    }
    return m;
  };
  let routes = buildRoutes();
  deps.tenants?.onChange(() => {
    routes = buildRoutes();
  });
  const processor = createSendProcessor({
    providers,
    order: config.providers.defaultRoute.filter((p) => providers.has(p)),
    priceOf: (provider, country) => tablePrice(config.providers, provider, country),
    costCheckAfterMs: config.worker.costCheckDelaySeconds * 1000,
    routes: () => routes,
    delivery,
    keys: deriveKeys(config.otpSecret),
    log,
    metrics,
    shutdown: shutdown.signal,
    applyEarlyReports,
    templatesFor,
    senderFor: (keyName) => deps.tenants?.get(keyName)?.sender ?? null,
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
    // BullMQ hands every worker the errors of the connections it shares (a reconnect failing, ...): to the
    // process's sink, rate-limited and counted (errors.ts), not one line per worker per attempt
    worker.on('error', (err) => reportStoreError('queue', err));
    worker.on('failed', (job, err) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
        log.warn({ otpId: job.data.otpId, reason: err.message }, 'send job failed for good');
      }
    });
    return worker;
  });

  // Status events: posted from here, never from a request path; retried with the `webhook` backoff.
  const hooks = config.statusWebhooks;
  const eventMetrics = createStatusEventMetrics(metrics.registry, async () => {
    const jobs = await eventQueue.getJobs(['waiting', 'delayed', 'prioritized'], 0, 199);
    return jobs.length === 0 ? null : Date.now() - Math.min(...jobs.map((j) => j.timestamp));
  });
  const defaultTarget: WebhookTarget | null = hooks.url ? { url: hooks.url, secrets: hooks.secrets } : null;
  const webhookTargetFor = (keyName: string) => deps.tenants?.get(keyName)?.webhook ?? defaultTarget;
  const eventWorker = new Worker<StatusEventJob, void, string>(
    eventQueue.name,
    createStatusEventProcessor({
      targetFor: webhookTargetFor,
      post: postWebhook,
      settings: {
        timeoutMs: hooks.timeoutMs,
        allowPrivateNetworks: hooks.allowPrivateNetworks,
        maxAgeMs: hooks.maxAgeSeconds * 1000,
      },
      metrics: eventMetrics,
      log,
    }),
    {
      connection: redis,
      prefix: eventQueue.opts.prefix,
      concurrency: hooks.concurrency,
      settings: { backoffStrategy: webhookBackoff(hooks.retryBaseMs) },
      removeOnFail: { age: config.queues.keepFailedSeconds, count: 10_000 },
    },
  );
  eventWorker.on('error', (err) => reportStoreError('queue', err));
  eventWorker.on('failed', (job, err) => {
    if (job && (err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1))) {
      log.warn({ webhookId: job.data.webhookId, event: job.name, reason: err.message }, 'status event failed for good');
    }
  });

  // The safety net: jobs that never started, receipts that never came, events left listed, expiries (the sweep).
  const sweeper = startSweeper(
    {
      redis,
      ks,
      queues,
      circuits,
      events,
      onFailed: (_otpId, cc) => metrics.funnel.inc({ stage: 'failed', provider: 'none', cc }),
      onNoReceipt: (provider) => metrics.attemptFailures.inc({ provider, kind: 'no_receipt' }),
      onNoFinalReceipt: (provider) => metrics.noFinalReceipt.inc({ provider }),
      resendAfterSent: config.worker.deliveryResendAfterSent,
      costChecks: {
        attempts: config.worker.costCheckAttempts,
        backoffMs: Math.max(1, config.worker.costCheckDelaySeconds) * 1000,
      },
    },
    {
      onRound: (r) => {
        if (r.queued > 0 || r.gaveUp > 0 || r.receiptTimeouts > 0 || r.errors > 0)
          log.warn({ ...r }, 'sweep queued or ended OTPs');
        else if (r.events > 0) log.info({ ...r }, 'sweep published status events');
      },
      onError: (err) =>
        log.warn({ err: { message: err instanceof Error ? err.message : String(err) } }, 'sweep failed'),
    },
  );
  await Promise.all([...workers, eventWorker].map((w) => w.waitUntilReady()));

  return {
    workers,
    eventWorker,
    metrics,
    isRunning: () => workers.every((w) => w.isRunning()),
    async close(deadlineMs) {
      const end = Date.now() + deadlineMs;
      // the sweep's round under way ends after the entry it is handling: the queues stay open until it has, or
      // until the shutdown deadline (a Redis that hangs holds the round's command)
      const swept = sweeper.stop();
      const deadline = setTimeout(() => {
        log.warn({ deadlineMs }, 'shutdown deadline reached; aborting in-flight sends');
        shutdown.abort();
        for (const w of [...workers, eventWorker]) void w.close(true);
      }, deadlineMs);
      await Promise.all([...workers, eventWorker].map((w) => w.close()));
      clearTimeout(deadline);
      await Promise.race([swept, sleep(Math.max(0, end - Date.now()), undefined, { ref: false })]);
      await queues.close();
      await eventQueue.close().catch(() => {});
    },
  };
}
