import 'dotenv/config';
import { loadConfig } from '@otp-gateway/core';
import { checkRedisNowAndOnReady, guardProcess, refuseToStart, STORE_ERRORS_METRIC } from '@otp-gateway/service';
import { connectStore, createSendGuards, createSendQueues, createStatusEventQueue } from '@otp-gateway/store';
import { pino } from 'pino';
import { Counter } from 'prom-client';
import { BOARD_PATH, buildDashboard, dashboardLoggerOptions } from './app.js';
import { createDashboardMetrics } from './metrics.js';

async function main() {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env, 'dashboard');
  } catch (e) {
    refuseToStart('dashboard', e);
  }
  const log = pino(dashboardLoggerOptions(config));
  const { redis, ks } = connectStore(config, 'request', 'otp-dashboard');
  await checkRedisNowAndOnReady('dashboard', redis, {
    env: config.env,
    allowNoAof: config.redisAllowNoAof,
    log,
    readyTimeoutMs: 5000,
  });
  // Every shard of the send queue, and the status events (failed deliveries shown), on the board and in the metrics.
  const sendQueues = createSendQueues(redis, ks, config.queues);
  const eventQueue = createStatusEventQueue(redis, ks);
  const queues = [...sendQueues.shards, eventQueue];
  const metrics = createDashboardMetrics(queues, {
    onError: (err) =>
      log.warn({ reason: err instanceof Error ? err.message : String(err) }, 'queue metrics unavailable'),
  });
  const storeErrors = new Counter({
    ...STORE_ERRORS_METRIC,
    registers: [metrics.registry],
  });
  guardProcess('dashboard', log, (source) => storeErrors.inc({ source }));
  const guards = createSendGuards(redis, ks, config.guards);
  const app = await buildDashboard({ config, redis, queues, logger: log, metrics, guards });

  let closing = false;
  const stop = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'dashboard stopping');
    await app.close();
    await sendQueues.close();
    await eventQueue.close().catch(() => {});
    redis.disconnect();
    log.info('dashboard stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  await app.listen({ port: config.dashboard.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.dashboard.port;
  log.info({ port, path: BOARD_PATH, queues: queues.map((q) => q.name) }, 'dashboard started');
}

main().catch((e) => {
  process.stderr.write(`otp-gateway dashboard failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
