import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { decryptCode, deriveKeys } from '../packages/core/src/index.js';
import { createKeyspace, createSendQueues, readSealedCode } from '../packages/store/src/index.js';
import { type ApiProcess, type HttpAnswer, startApiProcess } from './support/api-process.js';
import { API_KEYS, frMobile, KEY_A } from './support/otp-harness.js';
import { eventually, TEST_SECRET } from './support/processes.js';
import { freePort, type LocalRedis, startLocalRedis } from './support/redis-server.js';

const started: { stop(): Promise<unknown> }[] = [];
/** Registers something to stop after the test; its stop() becomes safe to call twice. */
const own = <T extends { stop(): Promise<unknown> }>(x: T): T => {
  let stopping: Promise<unknown> | undefined;
  const stop = x.stop.bind(x);
  x.stop = () => {
    stopping ??= stop();
    return stopping;
  };
  started.push(x);
  return x;
};

afterEach(async () => {
  for (const x of started.splice(0).reverse()) await x.stop().catch(() => {});
});
afterAll(async () => {
  for (const x of started.splice(0).reverse()) await x.stop().catch(() => {});
});

// These tests own their redis-server: the default key prefix and one send queue.
const ks = createKeyspace('otp');
const ONE_SHARD = { sendShards: 1, keepCompleted: 100, keepFailedSeconds: 3600 };
const env = (redisUrl: string) => ({ REDIS_URL: redisUrl, API_KEYS, OTP_RESEND_COOLDOWN_SECONDS: '0' });

/** 503 store_unavailable with the contract body, answered within a second. */
function expectUnavailable(res: HttpAnswer, what: string) {
  expect.soft({ what, status: res.status, code: (res.body['error'] as { code?: string } | undefined)?.code }).toEqual({
    what,
    status: 503,
    code: 'store_unavailable',
  });
  expect.soft(res.ms, `${what} answered in ${Math.round(res.ms)} ms`).toBeLessThan(1000);
}

async function expectAllUnavailable(api: ApiProcess) {
  const phone = frMobile(1);
  expectUnavailable(await api.request('GET', '/readyz', { key: null }), 'readyz');
  const send = await api.request('POST', '/v1/otp/send', { body: { phoneNumber: phone } });
  expectUnavailable(send, 'send');
  expect.soft(send.headers.get('retry-after')).toMatch(/^\d+$/);
  expectUnavailable(
    await api.request('POST', '/v1/otp/verify', { body: { phoneNumber: phone, code: '123456' } }),
    'verify',
  );
  expectUnavailable(await api.request('GET', `/v1/otp/otp_${'0'.repeat(32)}`), 'get');
  expectUnavailable(await api.request('GET', `/v1/otp/status?phoneNumber=${encodeURIComponent(phone)}`), 'status');
  // Liveness does not depend on the store.
  expect((await api.request('GET', '/healthz', { key: null })).status).toBe(200);
}

/** Waits until the API's /readyz answers 200 again (Redis back). */
const readyAgain = (api: ApiProcess) =>
  eventually(
    async () => ((await api.request('GET', '/readyz', { key: null })).status === 200 ? true : undefined),
    10_000,
    'readyz 200',
  );

/** Waits for the API to answer sends again, then proves the whole path works: OTP in Redis, job queued, code verifies. */
async function expectRecovered(api: ApiProcess, redisUrl: string, phone: string) {
  await readyAgain(api);
  const sent = await eventually(
    async () => {
      const r = await api.request('POST', '/v1/otp/send', { body: { phoneNumber: phone } });
      return r.status === 202 ? r : undefined;
    },
    10_000,
    'send 202',
  );
  const id = String(sent.body['id']);
  const redis = new Redis(redisUrl);
  const queues = createSendQueues(redis, ks, ONE_SHARD);
  try {
    const job = await queues.forOtp(id).getJob(id);
    expect(job?.id).toBe(id);
    const code = decryptCode(deriveKeys(TEST_SECRET), id, String(await readSealedCode(redis, ks, id)));
    const ok = await api.request('POST', '/v1/otp/verify', { body: { id, code } });
    expect(ok.status).toBe(200);
  } finally {
    await queues.close();
    await redis.quit();
  }
}

describe('when Redis is unreachable', () => {
  it('answers 503 store_unavailable within a second once Redis stops, and recovers by itself when it is back', async () => {
    const redis = own(await startLocalRedis());
    const api = own(await startApiProcess(env(redis.url), KEY_A.secret));
    expect((await api.request('POST', '/v1/otp/send', { body: { phoneNumber: frMobile(2) } })).status).toBe(202);

    await redis.stop();
    await expectAllUnavailable(api);
    // Still unavailable a moment later, while the client is reconnecting.
    await new Promise((r) => setTimeout(r, 1500));
    await expectAllUnavailable(api);

    const pid = api.proc.child.pid;
    const back = own(await startLocalRedis({ port: redis.port }));
    await expectRecovered(api, back.url, frMobile(3));
    expect(api.proc.child.exitCode).toBeNull();
    expect(api.proc.child.pid).toBe(pid);
  });

  it('answers 503 within a second when Redis hangs (frozen process), and recovers when it answers again', async () => {
    const redis = own(await startLocalRedis());
    const api = own(await startApiProcess(env(redis.url), KEY_A.secret));
    const pid = await redisPid(redis);
    process.kill(pid, 'SIGSTOP');
    try {
      await expectAllUnavailable(api);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await expectRecovered(api, redis.url, frMobile(4));
  });

  it('a send answered 503 while Redis hung leaves no code without an SMS, and its retry is served', async () => {
    const redis = own(await startLocalRedis());
    // The default resend cooldown: a client retrying a 503 after its Retry-After must not be told to wait.
    const api = own(await startApiProcess({ ...env(redis.url), OTP_RESEND_COOLDOWN_SECONDS: '30' }, KEY_A.secret));
    const phone = frMobile(6);
    const pid = await redisPid(redis);
    process.kill(pid, 'SIGSTOP');
    try {
      const send = await api.request('POST', '/v1/otp/send', { body: { phoneNumber: phone } });
      expect(send.status).toBe(503);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await readyAgain(api);
    await new Promise((r) => setTimeout(r, 1000)); // the 503's Retry-After
    await expectNoCodeWithoutSms(api, redis.url, phone);
  });

  it('regression: a send answered 503 while Redis hung counts nothing against the abuse guards once Redis wakes up', async () => {
    const redis = own(await startLocalRedis());
    // a day's budget of 3 SMS to France: the send refused with 503 must not take one of them
    const api = own(
      await startApiProcess({ ...env(redis.url), GUARD_DAILY_SMS_PER_COUNTRY: 'FR=3,*=100000' }, KEY_A.secret),
    );
    // one send first: the scripts are loaded, so the hung check is one Redis runs when it wakes up; and a moment
    // for the API's Redis clock (its deadlines) to be calibrated on a busy machine (it tries every second)
    expect((await api.request('POST', '/v1/otp/send', { body: { phoneNumber: frMobile(11) } })).status).toBe(202);
    await new Promise((r) => setTimeout(r, 1500));
    const pid = await redisPid(redis);
    process.kill(pid, 'SIGSTOP');
    try {
      expect((await api.request('POST', '/v1/otp/send', { body: { phoneNumber: frMobile(7) } })).status).toBe(503);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await readyAgain(api);
    // the hung commands ran when Redis woke up: the guards' check past its deadline counted nothing
    for (const n of [8, 9]) {
      expect((await api.request('POST', '/v1/otp/send', { body: { phoneNumber: frMobile(n) } })).status).toBe(202);
    }
    const third = await api.request('POST', '/v1/otp/send', { body: { phoneNumber: frMobile(10) } });
    expect({ status: third.status, code: (third.body['error'] as { code?: string }).code }).toEqual({
      status: 429,
      code: 'country_budget_exhausted',
    });
  });

  it('starts while Redis is down, answers 503, and serves once Redis comes up', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const api = own(await startApiProcess(env(url), KEY_A.secret, { waitReady: false }));
    await expectAllUnavailable(api);
    own(await startLocalRedis({ port }));
    await expectRecovered(api, url, frMobile(5));
  });
});

/**
 * A send answered 503 must not leave the number with a code that no SMS carries: either no OTP was created, or
 * its send job is queued; and the client's retry succeeds.
 */
async function expectNoCodeWithoutSms(api: ApiProcess, redisUrl: string, phone: string) {
  const redis = new Redis(redisUrl);
  const queues = createSendQueues(redis, ks, ONE_SHARD);
  try {
    const status = await api.request('GET', `/v1/otp/status?phoneNumber=${encodeURIComponent(phone)}`);
    // 200 (an OTP was created) or 404 (none): anything else would skip the check below
    expect([200, 404], status.text).toContain(status.status);
    if (status.status === 200) {
      const id = String(status.body['id']);
      expect
        .soft(await queues.forOtp(id).getJob(id), `OTP ${id} answered 503 but created, without a send job`)
        .toBeTruthy();
    }
    const retry = await api.request('POST', '/v1/otp/send', { body: { phoneNumber: phone } });
    expect(retry.status, `the retry after the 503: ${retry.text}`).toBe(202);
  } finally {
    await queues.close();
    await redis.quit();
  }
}

async function redisPid(redis: LocalRedis): Promise<number> {
  const client = new Redis(redis.url);
  try {
    const info = await client.info('server');
    return Number(/process_id:(\d+)/.exec(info)?.[1]);
  } finally {
    await client.quit();
  }
}
