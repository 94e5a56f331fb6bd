import { EnvReader, readRedisConfig } from '@otp-gateway/core';
import { afterAll, describe, expect, it } from 'vitest';
import { isolatedRedis, topologyEnv } from '../../../../test/support/redis.js';
import { createKeyspace } from '../keyspace.js';
import { createRequestLimiter } from '../otp/request-limits.js';
import { createRedis, type RedisClient } from './connection.js';
import { SCRIPTS } from './script.js';

// Regression: an auto-pipelining connection (the API's, the worker's script connection) whose first script call
// shared an event-loop turn with another command crashed the process: ioredis' pipeline for that turn lacked the
// command defined after it, and its answers no longer matched its callbacks ("results[i] is not iterable", thrown
// outside any promise). Scripts are now defined when the connection is made.
const opened: RedisClient[] = [];
afterAll(() => {
  for (const r of opened) r.disconnect();
});

describe('a new connection', () => {
  it('has every script of the store defined before it sends anything', () => {
    const conn = readRedisConfig(new EnvReader(topologyEnv())).connection;
    const redis = createRedis(conn, 'request', 'script-test', { autoPipelining: true });
    opened.push(redis);
    const missing = SCRIPTS.filter((s) => typeof (redis as unknown as Record<string, unknown>)[s.name] !== 'function');
    expect(SCRIPTS.length).toBeGreaterThan(10);
    expect(missing.map((s) => s.name)).toEqual([]);
  });

  it('runs its first scripts in the same turn as other commands, pipelined, without an uncaught error', async () => {
    const store = await isolatedRedis();
    opened.push(store.redis);
    const conn = readRedisConfig(new EnvReader(store.env)).connection;
    const redis = createRedis(conn, 'worker', 'script-test-pipelined', { autoPipelining: true });
    opened.push(redis);
    await redis.ping();
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      const limiter = createRequestLimiter(redis, createKeyspace(store.prefix), {
        ipPerMinute: 100,
        keyPerMinute: 100,
      });
      const answers = await Promise.all([
        redis.set(`${store.prefix}:x`, '1'),
        ...Array.from({ length: 20 }, (_, i) => limiter.hit(`10.0.0.${i}`, 'k')),
        redis.get(`${store.prefix}:x`),
      ]);
      expect(answers[0]).toBe('OK');
      expect(answers.slice(1, 21)).toEqual(Array(20).fill(null)); // none past its limit
      expect(answers[21]).toBe('1');
      await new Promise((r) => setTimeout(r, 50)); // callbacks run on later ticks
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
  });
});
