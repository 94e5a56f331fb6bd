// Baseline worker: BullMQ's Worker on the same queue options as the real one (concurrency, lock, stalled
// checks), whose processor returns at once. What draining a queue costs before any work is done.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// the worker app's own copies, so the baseline runs the very same bullmq and ioredis
const req = createRequire(join(root, 'apps', 'worker', 'package.json'));
const { Worker } = req('bullmq');
const { Redis, Cluster } = req('ioredis');

// one Redis (REDIS_URL) or a cluster (REDIS_CLUSTER_NODES), as the gateway's processes
const connection = process.env.REDIS_CLUSTER_NODES
  ? new Cluster(
      process.env.REDIS_CLUSTER_NODES.split(',').map((hp) => ({ host: hp.split(':')[0], port: Number(hp.split(':')[1]) })),
      { redisOptions: { maxRetriesPerRequest: null }, scaleReads: 'master' },
    )
  : new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: true });
connection.on('error', () => {});
const lockMs = Number(process.env.WORKER_LOCK_MS ?? 30_000);
// the queue and BullMQ prefix of one send queue shard (bench/lib.mjs gatewayLayout), e.g. otp-send-0 and otp:{q0}
const worker = new Worker(process.env.QUEUE ?? 'otp-send-0', async () => {}, {
  connection,
  prefix: process.env.QUEUE_PREFIX ?? 'otp:{q0}',
  concurrency: Number(process.env.WORKER_CONCURRENCY ?? 50),
  lockDuration: lockMs,
  stalledInterval: Math.max(1000, Math.floor(lockMs / 2)),
  maxStalledCount: 3,
});
worker.on('error', (err) =>
  process.stdout.write(`${JSON.stringify({ level: 50, msg: 'worker error', err: err.message })}\n`),
);
const stop = async () => {
  await worker.close();
  connection.disconnect();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
await worker.waitUntilReady();
process.stdout.write(`${JSON.stringify({ level: 30, msg: 'worker started', concurrency: worker.opts.concurrency })}\n`);
