import { EnvReader, readGuardsConfig } from '@otp-gateway/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from '../../../../test/support/redis.js';
import { createSendGuards } from '../guards/guards.js';
import { createRequestLimiter } from '../otp/request-limits.js';
import { connectStore } from '../settings.js';
import { type RedisClient, waitReady } from './connection.js';
import { SCRIPTS } from './script.js';

let store: IsolatedStore;
let request: RedisClient;

beforeAll(async () => {
  store = await isolatedRedis();
  // the API's kind of connection: auto-pipelining
  request = connectStore({ redis: store.redisConfig }, 'request', 'pipelined-scripts-test').redis;
  await waitReady(request, 10_000);
});
afterAll(async () => closeRedisClients(store?.redis, request));

it('regression: different scripts run for the first time at once on an auto-pipelining client do not crash it', async () => {
  // Each command a script registers is known to the client from its creation: one registered while a pipeline was
  // open was missing from it, and ioredis then threw from its callback (an uncaught exception: the API exited).
  for (const s of SCRIPTS)
    expect(typeof (request as unknown as Record<string, unknown>)[s.name], s.name).toBe('function');
  const guards = createSendGuards(request, store.ks, readGuardsConfig(new EnvReader({}), []));
  const limiter = createRequestLimiter(request, store.ks, { ipPerMinute: 1000, keyPerMinute: 1000 });
  const target = (i: number) => ({ keyName: 'k', phoneNumber: `+336123450${i}0`, country: 'FR', callingCode: '33' });
  const all = await Promise.all(
    Array.from({ length: 20 }, (_, i) => (i % 2 ? guards.send(target(i)) : limiter.hit(`192.0.2.${i}`, 'k'))),
  );
  expect(all).toHaveLength(20);
});
