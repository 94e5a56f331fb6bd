import { afterEach, beforeEach, expect, it } from 'vitest';
import { type OtpFixtures, otpFixtures } from '../../../../test/support/otp-fixtures.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from '../../../../test/support/redis.js';
import type { SendQueue, SendQueues } from '../jobs/send-jobs.js';
import { SWEEP_GRACE_MS } from '../otp/otp.record.js';
import { createCircuits } from './circuit.js';
import type { SweepReport } from './sweep.js';
import { startSweeper } from './sweeper.js';

let store: IsolatedStore;
let fixtures: OtpFixtures;

beforeEach(async () => {
  store = await isolatedRedis();
  fixtures = otpFixtures(store, { now: Date.now });
});

afterEach(async () => {
  await fixtures.close();
  await closeRedisClients(store.redis);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('sweeps each period until stopped; stop() waits for the entry under way, and no round starts after', async () => {
  const circuits = createCircuits(store.redis, store.ks, {
    failureThreshold: 5,
    cooldownMs: 10_000,
    ratePerSecond: {},
  });
  // The sweep requeues a lost OTP's job through these queues; the test holds it in the middle of that entry.
  let entered!: () => void;
  const inEntry = new Promise<void>((r) => {
    entered = r;
  });
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  const queues: SendQueues = {
    shards: fixtures.queues.shards,
    close: () => fixtures.queues.close(),
    forOtp(otpId) {
      const q = fixtures.queues.forOtp(otpId);
      const gated = {
        getJob: async (jobId: string) => {
          entered();
          await held;
          return q.getJob(jobId);
        },
        add: (...a: Parameters<SendQueue['add']>) => q.add(...a),
      };
      return gated as unknown as SendQueue;
    },
  };
  const rounds: SweepReport[] = [];
  const errors: unknown[] = [];
  const lost = await fixtures.created();
  const job = (id: string) => fixtures.queues.forOtp(id).getJob(id);
  const sweeper = startSweeper(
    // the sweep's clock is past the grace period: the OTP whose job was never queued is due
    { redis: store.redis, ks: store.ks, queues, circuits, now: () => Date.now() + SWEEP_GRACE_MS + 1000 },
    { everyMs: 300, onRound: (r) => rounds.push(r), onError: (e) => errors.push(e) },
  );
  await inEntry;
  let stopped = false;
  const stopping = sweeper.stop().then(() => {
    stopped = true;
  });
  await sleep(100);
  expect(stopped).toBe(false);
  release();
  await stopping;
  expect(errors).toEqual([]);
  // (a round slowed down enough to miss the OTP's partition before its lock ends reports 0; the next one has it)
  expect(rounds.reduce((n, r) => n + r.queued, 0)).toBe(1);
  expect(rounds.every((r) => r.errors === 0 && r.gaveUp === 0)).toBe(true);
  expect((await job(lost.id))?.name).toBe('send');
  // stopped: an OTP lost now is left for another worker's sweep. The lock goes, so a sweeper still ticking would
  // take it at its next tick and read every partition within 150 ms.
  const reported = rounds.length;
  await store.redis.del(store.ks.key('sweep', 'lock'));
  const later = await fixtures.created();
  await sleep(1000);
  expect(await job(later.id)).toBeUndefined();
  expect(rounds).toHaveLength(reported);
});
