import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp } from './support/processes.js';
import { closeRedisClients, isolatedRedis } from './support/redis.js';
import { freePort, type LocalRedis, startLocalRedis } from './support/redis-server.js';

const exitOf = (p: ReturnType<typeof startApp>) =>
  new Promise<number | null>((resolve) => {
    if (p.child.exitCode !== null) resolve(p.child.exitCode);
    else p.child.once('exit', (code) => resolve(code));
  });

describe('every process refuses a configuration it cannot run with', () => {
  it.each([
    [
      'api',
      { API_KEYS: 'short', OTP_SECRET: 'tooshort', OTP_TTL_SECONDS: '900', API_PORT: 'x' },
      ['API_KEYS', 'OTP_SECRET', 'OTP_TTL_SECONDS', 'API_PORT'],
    ],
    [
      'worker',
      { SMS_PROVIDERS: 'twilio,smsbox', OTP_SECRET: '' },
      ['SMS_PROVIDERS', 'OTP_SECRET', 'TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN'],
    ],
    [
      'webhooks',
      { TWILIO_AUTH_TOKEN: 'tok', OCTOPUSH_WEBHOOK_TOKEN: 'short', WEBHOOKS_PORT: '70000' },
      ['PUBLIC_WEBHOOK_BASE_URL', 'OCTOPUSH_WEBHOOK_TOKEN', 'WEBHOOKS_PORT'],
    ],
    ['dashboard', { DASHBOARD_USER: '', DASHBOARD_PASSWORD: '' }, ['DASHBOARD_USER', 'DASHBOARD_PASSWORD']],
    // regression: plain http for the provider APIs and the public callbacks origin, in production
    [
      'worker',
      {
        NODE_ENV: 'production',
        OTP_SECRET: 'unit-test-secret-0123456789abcdefghijklmnop',
        SMS_PROVIDERS: 'octopush',
        OCTOPUSH_API_KEY: 'k',
        OCTOPUSH_API_LOGIN: 'l',
        OCTOPUSH_API_BASE_URL: 'http://octopush.internal/v1/public',
        PUBLIC_WEBHOOK_BASE_URL: 'http://otp.example.com',
      },
      ['OCTOPUSH_API_BASE_URL', 'PUBLIC_WEBHOOK_BASE_URL', 'ALLOW_INSECURE_HTTP'],
    ],
    // safe defaults: the countries codes may go to are chosen, never "all" by omission
    [
      'api',
      {
        NODE_ENV: 'production',
        OTP_SECRET: 'unit-test-secret-0123456789abcdefghijklmnop',
        API_KEYS: 'k:0123456789abcdef0123',
      },
      ['OTP_ALLOWED_COUNTRIES'],
    ],
  ] as const)('%s names every bad variable in one message and exits 78', async (app, env, names) => {
    const p = startApp(app, { REDIS_URL: 'redis://127.0.0.1:1', ...env });
    expect(await exitOf(p)).toBe(78);
    const out = p.output();
    expect(out.match(/invalid configuration/g)).toHaveLength(1);
    for (const n of names) expect(out).toContain(n);
  });
});

describe('a Redis that may evict keys', () => {
  let redis: LocalRedis;
  beforeAll(async () => {
    redis = await startLocalRedis({ args: ['--maxmemory-policy', 'allkeys-lru'] });
  });
  afterAll(() => redis?.stop());

  it('is refused in production', async () => {
    const p = startApp('api', {
      NODE_ENV: 'production',
      OTP_ALLOWED_COUNTRIES: 'FR',
      REDIS_URL: redis.url,
      API_KEYS: 'k:0123456789abcdef0123',
      API_PORT: String(await freePort()),
    });
    expect(await exitOf(p)).toBe(78);
    expect(p.output()).toMatch(/maxmemory-policy is "allkeys-lru"/);
  });

  it('is warned about in development, and the process runs', async () => {
    const p = startApp('api', {
      NODE_ENV: 'development',
      REDIS_URL: redis.url,
      API_KEYS: 'k:0123456789abcdef0123',
      API_PORT: String(await freePort()),
    });
    try {
      const warn = await p.waitForLog((l) => String(l.msg ?? '').includes('allkeys-lru'));
      expect(warn.level).toBe(40);
      await p.waitForLog((l) => String(l.msg ?? '').startsWith('Server listening'));
    } finally {
      await p.stop();
    }
  });
});

describe('OTP_ALLOWED_COUNTRIES=* written out in production', () => {
  it('starts the API, which warns at start naming the variable, and lets codes go to any country', async () => {
    const store = await isolatedRedis();
    const port = await freePort();
    const p = startApp('api', {
      ...store.env,
      NODE_ENV: 'production',
      OTP_ALLOWED_COUNTRIES: '*',
      // the suite's Redis runs without AOF: that is not what this test is about
      REDIS_ALLOW_NO_AOF: 'true',
      API_KEYS: 'k:0123456789abcdef0123',
      API_PORT: String(port),
    });
    try {
      await p.waitForLog((l) => String(l.msg ?? '').startsWith('Server listening'));
      const warn = p.logs().find((l) => l.variable === 'OTP_ALLOWED_COUNTRIES');
      expect(warn).toMatchObject({
        level: 40,
        msg: expect.stringContaining('OTP_ALLOWED_COUNTRIES=* lets codes go to every country'),
      });
      // every country means every country: a send to one no list names is accepted
      const sent = await fetch(`http://127.0.0.1:${port}/v1/otp/send`, {
        method: 'POST',
        headers: { authorization: 'Bearer 0123456789abcdef0123', 'content-type': 'application/json' },
        body: JSON.stringify({ phoneNumber: '+5511987654321' }),
      });
      expect(sent.status).toBe(202);
    } finally {
      await p.stop();
      await closeRedisClients(store.redis);
    }
  });
});
