import 'dotenv/config';
import { ConfigError, loadConfig, logFormat, tenantSpendProblems } from '@otp-gateway/core';
import {
  compileTemplates,
  octopushSenderWarnings,
  TemplateError,
  tenantTemplateProblems,
} from '@otp-gateway/providers';
import {
  checkRedisNowAndOnReady,
  createTenantRegistry,
  guardProcess,
  refuseToStart,
  STORE_ERRORS_METRIC,
  type TenantRegistry,
} from '@otp-gateway/service';
import { connectStore, redisAllAnswer } from '@otp-gateway/store';
import { pino } from 'pino';
import { Counter } from 'prom-client';
import { startHealthServer } from './health.server.js';
import { startSendWorker } from './send.worker.js';

async function main() {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env, 'worker');
    compileTemplates(config.messages, { maxCodeLength: config.otp.codeLength, maxTtlSeconds: config.otp.ttlSeconds });
  } catch (e) {
    refuseToStart('worker', e instanceof TemplateError ? new ConfigError(e.problems) : e);
  }
  let tenants: TenantRegistry;
  try {
    // the same checks as the API's (apps/api/src/main.ts): a reload the API refuses must not apply here alone
    tenants = createTenantRegistry(config, (t) => [
      ...tenantTemplateProblems(t, config),
      ...tenantSpendProblems(t, config),
    ]);
  } catch (e) {
    refuseToStart('worker', e);
  }
  const log = pino({ level: config.logLevel, base: { app: 'worker', pid: process.pid }, ...logFormat(config) });
  const { redis, ks } = connectStore(config, 'worker', 'otp-worker');
  await checkRedisNowAndOnReady('worker', redis, {
    env: config.env,
    allowNoAof: config.redisAllowNoAof,
    log,
    readyTimeoutMs: 5000,
  });
  const scripts = connectStore(config, 'worker', 'otp-worker-scripts').redis;
  const sender = await startSendWorker({ config, redis, scripts, ks, log, tenants });
  const senderWarnings = () => {
    for (const w of octopushSenderWarnings(tenants.current().byName.values(), config.providers.octopush)) {
      log.warn(w, 'key sender not taken by octopush: its SMS through octopush carry OCTOPUSH_SENDER');
    }
  };
  senderWarnings();
  tenants.onChange(senderWarnings);
  process.on('SIGHUP', () => {
    const r = tenants.reload();
    if (r.ok) log.info({ keys: r.keys }, 'key settings reloaded');
    else log.error({ problems: r.problems }, 'TENANTS_FILE not reloaded: the settings in force are kept');
  });
  const storeErrors = new Counter({
    ...STORE_ERRORS_METRIC,
    registers: [sender.metrics.registry],
  });
  guardProcess('worker', log, (source) => storeErrors.inc({ source }));

  const health = config.worker.metricsPort
    ? await startHealthServer({
        port: config.worker.metricsPort,
        host: config.host,
        registry: sender.metrics.registry,
        metricsToken: config.metricsToken,
        ready: async () => (await redisAllAnswer([redis, scripts])) && sender.isRunning(),
      })
    : null;

  let stopping = false;
  const stop = async (signal: string) => {
    // a second signal, or a close that outlives its deadline (Redis away: BullMQ's close waits for it), ends the
    // process: the jobs' locks expire and their attempts are resumed elsewhere with the same request id
    const exitNow = (why: string) => {
      log.warn({ signal, reason: why }, 'worker exiting before its sends were settled; they will be resumed');
      process.exit(1);
    };
    if (stopping) return exitNow('second signal');
    stopping = true;
    setTimeout(() => exitNow('shutdown deadline passed'), config.worker.shutdownTimeoutMs + 5000).unref();
    log.info({ signal, deadlineMs: config.worker.shutdownTimeoutMs }, 'worker stopping; finishing in-flight sends');
    await sender.close(config.worker.shutdownTimeoutMs);
    health?.close();
    redis.disconnect();
    scripts.disconnect();
    log.info('worker stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  log.info(
    {
      providers: config.providers.order,
      concurrency: config.worker.concurrency,
      queueShards: config.queues.sendShards,
      metricsPort: config.worker.metricsPort,
    },
    'worker started',
  );
}

main().catch((e) => {
  process.stderr.write(`otp-gateway worker failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
