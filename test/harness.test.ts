import { afterAll, beforeAll, expect, it } from 'vitest';
import { snapshot } from './support/otp-harness.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from './support/redis.js';

// The test harness's own promise: "equal snapshots mean nothing changed", expiry times included.
let store: IsolatedStore;
beforeAll(async () => {
  store = await isolatedRedis();
});
afterAll(async () => closeRedisClients(store?.redis));

it('snapshot() is stable as time passes, and sees a TTL refreshed with the value unchanged', async () => {
  const key = store.ks.key('t', 'x');
  await store.redis.set(key, 'v', 'PX', 100_000);
  const before = await snapshot(store.redis, store.prefix);
  await new Promise((r) => setTimeout(r, 5));
  expect(await snapshot(store.redis, store.prefix)).toBe(before);
  await store.redis.pexpire(key, 200_000);
  expect(await snapshot(store.redis, store.prefix)).not.toBe(before);
});
