import { Writable } from 'node:stream';
import { loadConfig } from '@otp-gateway/core';
import { connectStore, createSendQueues, type RedisClient, type SendQueues } from '@otp-gateway/store';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from '../../../test/support/redis.js';
import { buildDashboard } from './app.js';

/** The dashboard after the security review: headers, login throttling, destructive actions, operator logs. */
const USER = 'operator';
const PASSWORD = 'correct-horse-battery';
const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});
const AUTH = basic(USER, PASSWORD);
const JOB = `otp_000${'d'.repeat(29)}`;

type App = Awaited<ReturnType<typeof buildDashboard>>;
let store: IsolatedStore;
let redis: RedisClient;
let queues: SendQueues;
let app: App;
const lines: Record<string, unknown>[] = [];

async function build(env: Record<string, string>, withLog = false): Promise<App> {
  const config = loadConfig(
    { ...store.env, DASHBOARD_USER: USER, DASHBOARD_PASSWORD: PASSWORD, NODE_ENV: 'test', ...env },
    'dashboard',
  );
  const stream = new Writable({
    write(c, _e, cb) {
      for (const l of String(c).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  const logger = withLog ? pino({ level: 'info' }, stream) : undefined;
  return buildDashboard({ config, redis, queues: queues.shards, ...(logger ? { logger } : {}) });
}

beforeAll(async () => {
  store = await isolatedRedis();
  const config = loadConfig({ ...store.env, DASHBOARD_USER: USER, DASHBOARD_PASSWORD: PASSWORD }, 'dashboard');
  redis = connectStore(config, 'request', 'dashboard-hardening-test').redis;
  queues = createSendQueues(redis, store.ks, config.queues);
  await queues.forOtp(JOB).add('send', { otpId: JOB }, { jobId: JOB });
  app = await build({ DASHBOARD_LOGIN_MAX_FAILURES: '3' }, true);
});

afterAll(async () => {
  await app?.close();
  await queues?.close();
  await closeRedisClients(redis, store?.redis);
});

const queueName = () => queues.forOtp(JOB).name;

describe('dashboard hardening', () => {
  it('regression: sends X-Frame-Options and a CSP with frame-ancestors none, on the board and on its challenge', async () => {
    for (const headers of [AUTH, {}]) {
      const res = await app.inject({ url: '/admin/queues', headers });
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(String(res.headers['content-security-policy'])).toContain("frame-ancestors 'none'");
    }
  });

  it('regression: refuses obliterate, clean, empty and pause by default, and the queue keeps its job', async () => {
    const q = queueName();
    for (const [method, url] of [
      ['PUT', `/admin/queues/api/queues/${q}/obliterate`],
      ['PUT', `/admin/queues/api/queues/${q}/clean/waiting`],
      ['PUT', `/admin/queues/api/queues/${q}/empty`],
      ['PUT', `/admin/queues/api/queues/${q}/pause`],
      ['PUT', '/admin/queues/api/queues/pause'],
      ['PUT', `/admin/queues/api/queues/${q}/${JOB}/clean`],
      ['PATCH', `/admin/queues/api/queues/${q}/${JOB}/delay`],
    ] as const) {
      const res = await app.inject({
        method,
        url,
        headers: AUTH,
        ...(method === 'PATCH' ? { payload: { delay: 1 } } : {}),
      });
      expect(res.statusCode, url).toBe(403);
      expect(res.json().error.message).toContain('DASHBOARD_ALLOW_DESTRUCTIVE_ACTIONS');
    }
    expect(await queues.forOtp(JOB).getJobState(JOB)).toBe('waiting');
    expect(await queues.forOtp(JOB).isPaused()).toBe(false);
  });

  it('allows them with DASHBOARD_ALLOW_DESTRUCTIVE_ACTIONS=true, and logs each operator action at info with the user', async () => {
    const open = await build({ DASHBOARD_ALLOW_DESTRUCTIVE_ACTIONS: 'true' }, true);
    try {
      const q = queueName();
      expect(
        (await open.inject({ method: 'PUT', url: `/admin/queues/api/queues/${q}/pause`, headers: AUTH })).statusCode,
      ).toBe(200);
      expect(await queues.forOtp(JOB).isPaused()).toBe(true);
      expect(
        (await open.inject({ method: 'PUT', url: `/admin/queues/api/queues/${q}/resume`, headers: AUTH })).statusCode,
      ).toBe(200);
      expect(await queues.forOtp(JOB).isPaused()).toBe(false);
      const actions = lines.filter((l) => l.msg === 'dashboard operator action');
      expect(actions).toEqual([
        expect.objectContaining({
          level: 30,
          user: USER,
          method: 'PUT',
          queue: q,
          route: expect.stringContaining('/pause'),
        }),
        expect.objectContaining({
          level: 30,
          user: USER,
          method: 'PUT',
          queue: q,
          route: expect.stringContaining('/resume'),
        }),
      ]);
      // a refused one is logged too, with who tried
      await app.inject({ method: 'PUT', url: `/admin/queues/api/queues/${q}/obliterate`, headers: AUTH });
      expect(lines.filter((l) => l.msg === 'dashboard operator action refused').at(-1)).toEqual(
        expect.objectContaining({
          level: 30,
          user: USER,
          status: 403,
          queue: q,
          route: expect.stringContaining('/obliterate'),
        }),
      );
      expect(JSON.stringify(lines)).not.toContain(PASSWORD);
    } finally {
      await open.close();
    }
  });

  it('regression: throttles failed logins per client: past the limit, 429 even with the right password', async () => {
    const attacker = '192.0.2.66';
    const wrong = basic(USER, 'wrong-password-guess');
    for (let i = 0; i < 3; i++) {
      expect((await app.inject({ url: '/admin/queues', headers: wrong, remoteAddress: attacker })).statusCode).toBe(
        401,
      );
    }
    const blocked = await app.inject({ url: '/admin/queues', headers: AUTH, remoteAddress: attacker });
    expect(blocked.statusCode).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    // another client is not affected
    expect((await app.inject({ url: '/admin/queues', headers: AUTH, remoteAddress: '192.0.2.67' })).statusCode).toBe(
      200,
    );
  });

  it('regression: a correct login between guesses from one address does not clear the count', async () => {
    // an operator's board polling from the address a guesser shares (NAT): the guesses still add up
    const shared = '192.0.2.70';
    const wrong = basic(USER, 'wrong-password-guess');
    for (let i = 0; i < 3; i++) {
      expect((await app.inject({ url: '/admin/queues', headers: wrong, remoteAddress: shared })).statusCode).toBe(401);
      if (i < 2) {
        expect((await app.inject({ url: '/admin/queues', headers: AUTH, remoteAddress: shared })).statusCode).toBe(200);
      }
    }
    expect((await app.inject({ url: '/admin/queues', headers: AUTH, remoteAddress: shared })).statusCode).toBe(429);
  });
});
