// Baseline worker: BullMQ's Worker on the same queue options as the real one (concurrency, lock, stalled
// checks), whose processor returns at once. What draining a queue costs before any work is done.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// the worker app's own copies, so the baseline runs the very same bullmq and ioredis
const req = createRequire(join(root, 'apps', 'worker', 'package.json'));
const { Worker } = req('bullmq');
const { Redis } = req('ioredis');

const connection = new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: true });
connection.on('error', () => {});
const lockMs = Number(process.env.WORKER_LOCK_MS ?? 30_000);
const worker = new Worker(process.env.QUEUE ?? 'otp-send', async () => {}, {
  connection,
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
