import { loadConfig } from '@otp-gateway/core';
import type { OtpService } from '@otp-gateway/service';
import type { RedisClient } from '@otp-gateway/store';
import { describe, expect, it } from 'vitest';
import { buildApi } from './app.js';

// answers after 5 ms, as a Redis over a network would: /readyz must wait for it (regression: it once waited 0 ms)
const answering = {
  ping: () => new Promise((r) => setTimeout(() => r('PONG'), 5)),
} as unknown as RedisClient;
const away = { ping: () => Promise.reject(new Error('Connection is closed.')) } as unknown as RedisClient;
/** The API with fakes: /readyz reads only the connections it is given. */
const build = (queueRedis?: RedisClient, durabilityRedis?: RedisClient) =>
  buildApi({
    config: loadConfig(
      {
        NODE_ENV: 'test',
        OTP_SECRET: 'readyz-test-secret-0123456789abcdefghijklmnopq',
        API_KEYS: 'shop:readyz-test-secret-0123456789abcdef',
      },
      'api',
    ),
    service: {} as OtpService,
    connections: [answering, ...(queueRedis ? [queueRedis] : []), ...(durabilityRedis ? [durabilityRedis] : [])],
    logger: false,
  });

describe('/readyz', () => {
  it('is ready only when BullMQ’s own connection answers too', async () => {
    for (const [queueRedis, status] of [
      [undefined, 200],
      [answering, 200],
      [away, 503],
    ] as const) {
      const app = await build(queueRedis);
      const r = await app.inject({ url: '/readyz' });
      expect(r.statusCode).toBe(status);
      if (status === 503) expect(r.json()).toMatchObject({ error: { code: 'store_unavailable' } });
      await app.close();
    }
  });

  it('is ready only when the replica check’s connection answers too, behind Sentinel', async () => {
    for (const [durabilityRedis, status] of [
      [answering, 200],
      [away, 503],
    ] as const) {
      const app = await build(answering, durabilityRedis);
      expect((await app.inject({ url: '/readyz' })).statusCode).toBe(status);
      await app.close();
    }
  });
});
