import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../packages/store/src/index.js';
import { type ApiProcess, startApiProcess } from './support/api-process.js';
import { API_KEYS, KEY_A } from './support/otp-harness.js';
import { closeRedisClients, isolatedRedis } from './support/redis.js';

let db: RedisClient;
let api: ApiProcess;

beforeAll(async () => {
  const isolated = await isolatedRedis();
  db = isolated.redis;
  api = await startApiProcess({ ...isolated.env, API_KEYS }, KEY_A.secret);
});

afterAll(async () => {
  await api?.stop();
  await closeRedisClients(db);
});

describe('a malformed percent-escape in phoneNumber= of a URL', () => {
  it('is answered 400 with the contract body and does not crash the API', async () => {
    const res = await api.request('GET', '/v1/otp/status?phoneNumber=%E0%A4%A').catch((e: unknown) => e);
    expect(res).toMatchObject({
      status: 400,
      body: { error: { code: expect.any(String), message: expect.any(String) } },
    });
    const unauthenticated = await api.request('GET', '/healthz?phoneNumber=%', { key: null }).catch((e: unknown) => e);
    expect(unauthenticated).toMatchObject({ status: 200 });
    expect(api.proc.child.exitCode).toBeNull();
    const after = await api.request('GET', '/healthz', { key: null }).catch((e: unknown) => String(e));
    expect(after).toMatchObject({ status: 200 });
  });
});
