import 'dotenv/config';
import { loadConfig, type ProviderId } from '@otp-gateway/core';
import { checkRedisNowAndOnReady, guardProcess, refuseToStart, STORE_ERRORS_METRIC } from '@otp-gateway/service';
import {
  circuitSettings,
  connectStore,
  createAddressLimiter,
  createCircuits,
  createMessageIndex,
  createReportRepo,
  createSendQueues,
  createStatusEventQueue,
  createStatusEvents,
  type EarlyOutcome,
  waitReady,
} from '@otp-gateway/store';
import { Counter } from 'prom-client';
import { buildWebhooks } from './app.js';
import { createWebhookMetrics } from './metrics.js';

async function main() {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env, 'webhooks');
  } catch (e) {
    refuseToStart('webhooks', e);
  }
  const { redis, ks } = connectStore(config, 'request', 'otp-webhooks');
  // BullMQ (resends, status events: a few callbacks in a hundred) on a connection of its own, as in the API.
  const queueRedis = connectStore(config, 'request', 'otp-webhooks-queues').redis;
  const queues = createSendQueues(queueRedis, ks, config.queues);
  const metrics = createWebhookMetrics();
  const eventQueue = createStatusEventQueue(queueRedis, ks);
  let log: { warn(o: object, m: string): void } | undefined;
  // reports kept until their message is recorded: by the message index, or on the attempt their callback named
  const onEarly = (provider: ProviderId, outcome: EarlyOutcome) => metrics.earlyReports.inc({ provider, outcome });
  const reports = createReportRepo({
    redis,
    ks,
    messages: createMessageIndex(redis, ks, { onEarly }),
    onEarly,
    circuits: createCircuits(redis, ks, circuitSettings(config)),
    events: createStatusEvents({ redis, ks, queue: eventQueue }),
    onEventError: (err) =>
      log?.warn(
        { err: { message: err instanceof Error ? err.message : String(err) } },
        'status event not queued; the worker sweep will queue it',
      ),
  });
  const limiter = createAddressLimiter(redis, ks, 'cb', config.webhooks.ipRequestsPerMinute);
  const app = await buildWebhooks({ config, reports, queues, connections: [redis, queueRedis], metrics, limiter });
  log = app.log;
  const storeErrors = new Counter({
    ...STORE_ERRORS_METRIC,
    registers: [metrics.registry],
  });
  guardProcess('webhooks', app.log, (source) => storeErrors.inc({ source }));
  await checkRedisNowAndOnReady('webhooks', redis, {
    env: config.env,
    allowNoAof: config.redisAllowNoAof,
    log: app.log,
    readyTimeoutMs: 2000,
  });
  // as in the API: with the store up, the queues' connection (resends) is ready before the first callback
  if (redis.status === 'ready' && !(await waitReady(queueRedis, 2000))) {
    app.log.warn('the queues connection is not ready: resends are listed, and the worker sweep queues them');
  }
  if (!config.webhooks.twilioAuthToken) app.log.warn('TWILIO_AUTH_TOKEN is not set: Twilio callbacks answer 404');
  if (config.webhooks.octopushTokens.length === 0)
    app.log.warn('OCTOPUSH_WEBHOOK_TOKEN is not set: Octopush callbacks answer 404');

  let closing = false;
  const stop = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'webhooks stopping');
    await app.close();
    await queues.close();
    await eventQueue.close().catch(() => {});
    redis.disconnect();
    queueRedis.disconnect();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  await app.listen({ port: config.webhooks.port, host: config.host });
}

main().catch((e) => {
  process.stderr.write(`otp-gateway webhooks failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
