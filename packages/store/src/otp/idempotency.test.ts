import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedisClients, type IsolatedStore, isolatedRedis, keysUnder } from '../../../../test/support/redis.js';
import { createIdempotencyStore, IDEMPOTENCY_TTL_MS } from './idempotency.js';

let store: IsolatedStore;
beforeAll(async () => {
  store = await isolatedRedis();
});
afterAll(() => closeRedisClients(store?.redis));

/** The TTL of the one claim under a prefix, which is then removed. */
const ttlOfOnlyClaim = async (s: IsolatedStore) => {
  const keys = (await keysUnder(s.redis, s.prefix)).filter((k) => k.includes(':{i'));
  expect(keys).toHaveLength(1);
  const ttl = await s.redis.pttl(keys[0] as string);
  await s.redis.del(keys[0] as string);
  return ttl;
};

describe('Idempotency-Key claims', () => {
  it('answer the id that claimed a key, refuse another body, and keep keys of two API keys apart', async () => {
    const idem = createIdempotencyStore(store.redis, store.ks);
    expect(await idem.claim('shop', 'k-1', 'fp-a', 'otp_1', 60_000)).toEqual({ kind: 'claimed' });
    expect(await idem.claim('shop', 'k-1', 'fp-a', 'otp_2', 60_000)).toEqual({ kind: 'replay', otpId: 'otp_1' });
    expect(await idem.claim('shop', 'k-1', 'fp-b', 'otp_3', 60_000)).toEqual({ kind: 'conflict' });
    expect(await idem.claim('other', 'k-1', 'fp-b', 'otp_4', 60_000)).toEqual({ kind: 'claimed' });
  });

  it('regression: a claim never outlives the OTP record it names (a retry after would get the old id, another code)', async () => {
    const fresh = await isolatedRedis();
    try {
      const idem = createIdempotencyStore(fresh.redis, fresh.ks);
      await idem.claim('short', 'k-2', 'fp', 'otp_5', 90_000);
      const short = await ttlOfOnlyClaim(fresh);
      expect(short).toBeGreaterThan(80_000);
      expect(short).toBeLessThanOrEqual(90_000);
      await idem.claim('long', 'k-3', 'fp', 'otp_6', 3 * IDEMPOTENCY_TTL_MS);
      expect(await ttlOfOnlyClaim(fresh)).toBeLessThanOrEqual(IDEMPOTENCY_TTL_MS);
    } finally {
      await closeRedisClients(fresh.redis);
    }
  });
});
