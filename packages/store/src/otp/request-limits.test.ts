import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedisClients, type IsolatedStore, isolatedRedis, keysUnder } from '../../../../test/support/redis.js';
import { createAddressLimiter, createRequestLimiter } from './request-limits.js';

let store: IsolatedStore;
beforeAll(async () => {
  store = await isolatedRedis();
});
afterAll(() => closeRedisClients(store?.redis));

/** Counts the scripts the client sends while `fn` runs. */
async function scriptCalls<T>(fn: () => Promise<T>): Promise<{ result: T; calls: number }> {
  const redis = store.redis as unknown as { evalsha: (...a: unknown[]) => Promise<unknown> };
  const evalsha = redis.evalsha;
  let calls = 0;
  redis.evalsha = (...a: unknown[]) => {
    calls++;
    return evalsha.apply(store.redis, a);
  };
  try {
    return { result: await fn(), calls };
  } finally {
    redis.evalsha = evalsha;
  }
}

describe('request limits', () => {
  it('count the hits of one turn in one call per counter, each answered as if counted one after another', async () => {
    const limiter = createRequestLimiter(store.redis, store.ks, { ipPerMinute: 100, keyPerMinute: 10 });
    const { result, calls } = await scriptCalls(() =>
      Promise.all(Array.from({ length: 12 }, () => limiter.hit('192.0.2.1', 'shop'))),
    );
    expect(calls).toBe(2); // the address's counter and the key's, not 24
    // the first ten pass, the 11th and 12th are past the key's limit, for what is left of the minute
    expect(result.slice(0, 10)).toEqual(Array(10).fill(null));
    for (const r of result.slice(10)) {
      expect(r).toMatchObject({ kind: 'limited', scope: 'key' });
      expect(r!.retryAfterMs).toBeGreaterThan(55_000);
      expect(r!.retryAfterMs).toBeLessThanOrEqual(60_000);
    }
    // the next turn goes on from the total: refused, and counted all the same (as one INCR each was)
    expect(await limiter.hit('192.0.2.1', 'shop')).toMatchObject({ kind: 'limited', scope: 'key' });
    const counters = (await keysUnder(store.redis, store.prefix)).filter((k) => k.includes('key:shop'));
    expect(counters).toHaveLength(1);
    expect(await store.redis.get(counters[0] as string)).toBe('13');
    // the window started with the first hit: the counter expires within the minute
    const ttl = await store.redis.pttl(counters[0] as string);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('keep separate counters apart within a turn, and fail every hit of a call that fails', async () => {
    const limiter = createRequestLimiter(store.redis, store.ks, { ipPerMinute: 1, keyPerMinute: 100 });
    const [a, b, c] = await Promise.all([
      limiter.hit('198.51.100.1', 'k'),
      limiter.hit('198.51.100.2', 'k'),
      limiter.hit('198.51.100.1', 'k'),
    ]);
    expect([a, b]).toEqual([null, null]);
    expect(c).toMatchObject({ kind: 'limited', scope: 'ip' });

    const callbacks = createAddressLimiter(store.redis, store.ks, 'cb', 2);
    const redis = store.redis as unknown as { evalsha: (...a: unknown[]) => Promise<unknown> };
    const evalsha = redis.evalsha;
    redis.evalsha = () => Promise.reject(new Error('connection lost'));
    try {
      const answers = await Promise.allSettled([callbacks.refused('203.0.113.5'), callbacks.refused('203.0.113.5')]);
      expect(answers.map((x) => x.status)).toEqual(['rejected', 'rejected']);
    } finally {
      redis.evalsha = evalsha;
    }
    // two refusals are within the limit of 2; the third, and those after it, are past it; another address is not
    expect(await Promise.all([1, 2, 3, 4].map(() => callbacks.refused('203.0.113.5')))).toEqual([
      null,
      null,
      { kind: 'limited', scope: 'ip', retryAfterMs: expect.any(Number) },
      { kind: 'limited', scope: 'ip', retryAfterMs: expect.any(Number) },
    ]);
    expect(await callbacks.refused('203.0.113.6')).toBeNull();
  });
});
