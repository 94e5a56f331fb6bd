import { createHash, randomUUID } from 'node:crypto';
import { EnvReader, readRedisConfig } from '@otp-gateway/core';
import { afterAll, describe, expect, it } from 'vitest';
import { isolatedRedis } from '../../../../test/support/redis.js';
import { createKeyspace } from '../keyspace.js';
import { createRequestLimiter } from '../otp/request-limits.js';
import { createRedis, masters, type RedisClient } from './connection.js';
import { defineScript } from './script.js';

// Regression: a connection whose first script call shared an event-loop turn with other commands crashed the
// process when scripts were ioredis commands defined on the connection and the connection was auto-pipelined
// ("results[i] is not iterable", thrown outside any promise). Scripts now run by EVALSHA, and by EVAL when the
// server does not know them, and no connection is auto-pipelined any more (connection.ts): the second test now
// checks a first turn of concurrent script calls amid other commands, not the pipelined crash itself.
const opened: RedisClient[] = [];
afterAll(() => {
  for (const r of opened) r.disconnect();
});

describe('a new connection', () => {
  it('runs a script the server has never seen (EVAL), which the server then knows (EVALSHA next)', async () => {
    const store = await isolatedRedis();
    opened.push(store.redis);
    const conn = readRedisConfig(new EnvReader(store.env)).connection;
    const redis = createRedis(conn, 'worker', 'script-test');
    opened.push(redis);
    await redis.ping();
    // a source no server has cached: its own nonce
    const nonce = randomUUID();
    const script = defineScript({
      name: 'scriptTestEcho',
      doc: 'answers its argument (a test of how scripts are run)',
      keys: ['k'],
      args: ['v'],
      body: `-- ${nonce}\nredis.call('SET', K.k, A.v)\nreturn {'ok', 'v', A.v}`,
    });
    const sha = createHash('sha1').update(script.source).digest('hex');
    const key = `${store.prefix}:echo`;
    const answers = await Promise.all([
      script.run(redis, { k: key }, { v: 'a' }),
      script.run(redis, { k: key }, { v: 'b' }),
    ]);
    expect(answers).toEqual([
      { outcome: 'ok', v: 'a' },
      { outcome: 'ok', v: 'b' },
    ]);
    expect(await redis.get(key)).toBe('b');
    // cached where the key lives (on a cluster: the key's node)
    const cached = await Promise.all(masters(redis).map((m) => m.script('EXISTS', sha) as Promise<number[]>));
    expect(cached.some((c) => c[0] === 1)).toBe(true);
    expect(await script.run(redis, { k: key }, { v: 'c' })).toEqual({ outcome: 'ok', v: 'c' });
  });

  it("fails a script call with Redis' own error when the script itself fails", async () => {
    const store = await isolatedRedis();
    opened.push(store.redis);
    const script = defineScript({
      name: 'scriptTestFails',
      doc: 'raises an error (a test of how scripts are run)',
      keys: ['k'],
      args: [],
      body: `return redis.error_reply('NOPE ${randomUUID()}')`,
    });
    await expect(script.run(store.redis, { k: `${store.prefix}:x` }, {})).rejects.toThrow(/^NOPE/);
  });

  it('runs its first scripts in the same turn as other commands without an uncaught error', async () => {
    const store = await isolatedRedis();
    opened.push(store.redis);
    const conn = readRedisConfig(new EnvReader(store.env)).connection;
    const redis = createRedis(conn, 'worker', 'script-test-turn');
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
