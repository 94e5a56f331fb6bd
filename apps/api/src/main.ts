import 'dotenv/config';
import { deriveKeys, loadConfig, tenantSpendProblems } from '@otp-gateway/core';
import { tenantTemplateProblems } from '@otp-gateway/providers';
import {
  checkRedisNowAndOnReady,
  createOtpService,
  createTenantRegistry,
  guardProcess,
  refuseToStart,
  STORE_ERRORS_METRIC,
  type TenantRegistry,
} from '@otp-gateway/service';
import {
  connectStore,
  createIdempotencyStore,
  createOtpRepo,
  createRedis,
  createReplicaWait,
  createRequestLimiter,
  createSendGuards,
  createSendQueues,
  createStatusEventQueue,
  createStatusEvents,
  numberRules,
  otpKeys,
  requestLimits,
  startRedisClock,
  waitReady,
} from '@otp-gateway/store';
import { Cluster } from 'ioredis';
import { Counter } from 'prom-client';
import { buildApi } from './app.js';
import { createApiMetrics } from './metrics.js';

async function main() {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env, 'api');
  } catch (e) {
    refuseToStart('api', e);
  }
  let tenants: TenantRegistry;
  try {
    // the same checks as the worker's (apps/worker/src/main.ts): a reload one refuses must not apply in the other
    tenants = createTenantRegistry(config, (t) => [
      ...tenantTemplateProblems(t, config),
      ...tenantSpendProblems(t, config),
    ]);
  } catch (e) {
    refuseToStart('api', e);
  }
  const { redis, ks } = connectStore(config, 'request', 'otp-api');
  // BullMQ (the send queues, status events) on a connection of its own, kept apart from the store's scripts (its 64
  // script commands are defined on it, and its adds do not queue behind the guards' batches); /readyz pings both.
  const queueRedis = connectStore(config, 'request', 'otp-api-queues').redis;
  const queues = createSendQueues(queueRedis, ks, config.queues);
  const clock = startRedisClock(redis);
  const guards = createSendGuards(redis, ks, config.guards, {
    currency: config.providers.priceCurrency,
    keyBudgets: (name) => tenants.get(name)?.budgets ?? null,
    clock,
    deadlineMs: 500,
  });
  const metrics = createApiMetrics(config.guards.enabled ? () => guards.blocks() : undefined);
  const eventQueue = createStatusEventQueue(queueRedis, ks);
  let app: Awaited<ReturnType<typeof buildApi>> | undefined;
  const repo = createOtpRepo(
    redis,
    ks,
    { rules: numberRules(config.otp), retentionMs: config.otp.recordRetentionSeconds * 1000 },
    {
      clock,
      deadlineMs: 500,
      events: createStatusEvents({ redis, ks, queue: eventQueue }),
      onEventError: (err) =>
        app?.log.warn(
          { err: { message: err instanceof Error ? err.message : String(err) } },
          'status event not queued; the worker sweep will queue it',
        ),
    },
  );
  // Behind Sentinel an OTP is accepted once a replica holds it (REDIS_WAIT_REPLICAS), checked on a connection of
  // its own (see createReplicaWait).
  const durabilityRedis =
    config.redis.waitReplicas > 0 ? createRedis(config.redis.connection, 'request', 'otp-api-durability') : null;
  const durability =
    durabilityRedis && !(durabilityRedis instanceof Cluster)
      ? createReplicaWait(durabilityRedis, { replicas: config.redis.waitReplicas, markerKey: ks.key('dur', 'marker') })
      : null;
  const service = createOtpService({
    config,
    keys: deriveKeys(config.otpSecret),
    repo,
    limiter: createRequestLimiter(redis, ks, requestLimits(config.otp)),
    idempotency: createIdempotencyStore(redis, ks),
    queues,
    guards,
    durable: durability ? (id) => durability(otpKeys(ks, id).otp) : undefined,
    wantsEvents: (name) => config.statusWebhooks.url !== null || tenants.get(name)?.webhook != null,
    testNumber: (name, e164) =>
      config.api.testNumbersEnabled ? (tenants.get(name)?.testNumbers.get(e164) ?? null) : null,
    keySettings: (name) => {
      const t = tenants.get(name);
      return t
        ? {
            ...(t.ttlSeconds !== null ? { ttlSeconds: t.ttlSeconds } : {}),
            ...(t.codeLength !== null ? { codeLength: t.codeLength } : {}),
            ...(t.allowedCountries !== null ? { allowedCountries: t.allowedCountries } : {}),
            ...(t.routes.size > 0 ? { routes: t.routes } : {}),
          }
        : {};
    },
    onFunnel: (e) => metrics.funnel.inc({ stage: e.stage, provider: e.provider, cc: e.callingCode }),
    onEnqueueFailed: (otpId, err) =>
      app?.log.warn(
        { otpId, err: { message: err instanceof Error ? err.message : String(err) } },
        'otp stored but its send job was not queued; the worker sweep will queue it',
      ),
  });
  app = await buildApi({
    config,
    service,
    connections: durabilityRedis ? [redis, queueRedis, durabilityRedis] : [redis, queueRedis],
    metrics,
    keys: () => tenants.current().byDigest,
  });
  process.on('SIGHUP', () => {
    const r = tenants.reload();
    if (r.ok) app?.log.info({ keys: r.keys }, 'api keys and their settings reloaded');
    else app?.log.error({ problems: r.problems }, 'TENANTS_FILE not reloaded: the settings in force are kept');
  });
  const storeErrors = new Counter({
    ...STORE_ERRORS_METRIC,
    registers: [metrics.registry],
  });
  guardProcess('api', app.log, (source) => storeErrors.inc({ source }));
  if (config.otp.allowAllCountries) {
    app.log.warn(
      { variable: 'OTP_ALLOWED_COUNTRIES' },
      'OTP_ALLOWED_COUNTRIES=* lets codes go to every country: SMS pumping aims at the countries you never serve; list yours',
    );
  }
  await checkRedisNowAndOnReady('api', redis, {
    env: config.env,
    allowNoAof: config.redisAllowNoAof,
    log: app.log,
    readyTimeoutMs: 2000,
  });
  // The other connections were opened with the store's: when the store is up, take no send before they are ready
  // too (a send whose job cannot be queued waits for the worker sweep; one whose replica check cannot run is
  // answered 503). When Redis is down the API starts all the same, and answers 503 until it is back.
  if (redis.status === 'ready') {
    if (!(await waitReady(queueRedis, 2000))) {
      app.log.warn('the queues connection is not ready: sends are stored, and the worker sweep queues their jobs');
    }
    if (durabilityRedis && !(await waitReady(durabilityRedis, 2000))) {
      app.log.warn('the replica check connection is not ready: sends are answered 503 until it is');
    }
  }

  let closing = false;
  const stop = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'api stopping');
    await app.close();
    await queues.close();
    await eventQueue.close().catch(() => {});
    clock.stop();
    redis.disconnect();
    queueRedis.disconnect();
    durabilityRedis?.disconnect();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  await app.listen({ port: config.api.port, host: config.host });
}

main().catch((e) => {
  process.stderr.write(`otp-gateway api failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
