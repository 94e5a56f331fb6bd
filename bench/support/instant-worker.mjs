// The real send worker (apps/worker's startSendWorker: the same processor, scripts, retries, logging and
// metrics as `node apps/worker/dist/main.js`) with instant in-process providers in place of the HTTP ones:
// what the worker itself costs per job, apart from a provider's HTTP client. Configured by the same env.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const load = (path) => import(pathToFileURL(join(root, path)).href);
const { loadConfig } = await load('packages/core/dist/index.js');
const { connectStore } = await load('packages/store/dist/index.js');
const { startSendWorker } = await load('apps/worker/dist/send.worker.js');
const { pino } = createRequire(join(root, 'apps', 'worker', 'package.json'))('pino');

const config = loadConfig(process.env, 'worker');
const log = pino({ level: config.logLevel, base: { app: 'worker', pid: process.pid } });
const { redis, ks } = connectStore(config, 'worker', 'otp-worker');
// the store's scripts on a connection of their own, as apps/worker/src/main.ts opens it
const scripts = connectStore(config, 'worker', 'otp-worker-scripts').redis;
let n = 0;
/** A provider that accepts at once, as a provider answering in no time would. */
const instant = (id) => ({
  id,
  async send() {
    n++;
    return { messageId: `${id}-${process.pid}-${n}`, providerStatus: 'queued' };
  },
});
const sender = await startSendWorker({
  config,
  redis,
  scripts,
  ks,
  log,
  providers: config.providers.order.map(instant),
});
const stop = async () => {
  await sender.close(5000);
  redis.disconnect();
  scripts.disconnect();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
log.info(
  { providers: config.providers.order, concurrency: config.worker.concurrency, queueShards: config.queues.sendShards },
  'worker started',
);
