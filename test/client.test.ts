import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOtpClient,
  type FetchLike,
  isOtpGatewayError,
  type OtpClient,
  OtpGatewayError,
} from '../packages/client/src/index.js';
import { createSendQueues, type SendQueues } from '../packages/store/src/index.js';
import { codeFromStore, frMobile } from './support/otp-harness.js';
import { type AppProcess, startApp, waitForHttp } from './support/processes.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from './support/redis.js';
import { freePort } from './support/redis-server.js';

// The client against the real API process (apps/api/dist/main.js): what a backend that installs
// @otp-gateway/client sees. No worker runs, so each send job stays queued; the test reads codes from the store.

const KEY = 'client-test-secret-0123456789';
const OTHER_KEY = 'client-other-secret-0123456789';
const MAX_ATTEMPTS = 3;
const OTP_ID = /^otp_[0-9a-f]{32}$/;

let store: IsolatedStore;
let queues: SendQueues;
let api: AppProcess;
let baseUrl: string;
let otp: OtpClient;

beforeAll(async () => {
  store = await isolatedRedis();
  queues = createSendQueues(store.redis, store.ks, {
    sendShards: Number(store.env.SEND_QUEUE_SHARDS ?? 1),
    keepCompleted: 100,
    keepFailedSeconds: 3600,
  });
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  api = startApp('api', {
    HOST: '127.0.0.1',
    API_PORT: String(port),
    ...store.env,
    API_KEYS: `backend:${KEY},other:${OTHER_KEY}`,
    OTP_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    OTP_RESEND_COOLDOWN_SECONDS: '0',
  });
  await waitForHttp(`${baseUrl}/readyz`);
  otp = createOtpClient({ baseUrl, apiKey: KEY });
});

afterAll(async () => {
  await api?.stop();
  await queues?.close();
  await closeRedisClients(store?.redis);
});

/** The code of an OTP, learned the only way a test can: decrypting the sealed code the workers send. */
async function codeOf(id: string): Promise<string> {
  const code = await codeFromStore(store, id);
  if (!code) throw new Error(`no sealed code for ${id}`);
  return code;
}

async function caught(p: Promise<unknown>): Promise<OtpGatewayError> {
  try {
    await p;
  } catch (e) {
    expect(isOtpGatewayError(e)).toBe(true);
    return e as OtpGatewayError;
  }
  throw new Error('expected a rejection');
}

describe('@otp-gateway/client against the real API', () => {
  it('health: the gateway is ready', async () => {
    await expect(otp.health()).resolves.toEqual({ status: 'ready' });
  });

  it('send, a wrong code, the right code, then status and get show the approved OTP', async () => {
    const phone = frMobile(7001);
    const sent = await otp.send(phone, { locale: 'fr' });
    expect(sent).toEqual({
      id: expect.stringMatching(OTP_ID),
      status: 'pending',
      deliveryStatus: 'queued',
      phoneNumber: phone,
      expiresAt: expect.any(String),
    });
    expect(Date.parse(sent.expiresAt)).toBeGreaterThan(Date.now());
    const code = await codeOf(sent.id);
    const wrong = code.startsWith('9') ? `0${code.slice(1)}` : `9${code.slice(1)}`;

    await expect(otp.verify({ id: sent.id }, wrong)).resolves.toEqual({
      ok: false,
      code: 'wrong_code',
      message: expect.any(String),
      id: sent.id,
      status: 'pending',
      attemptsRemaining: MAX_ATTEMPTS - 1,
    });
    await expect(otp.verify({ phoneNumber: phone }, code)).resolves.toEqual({
      ok: true,
      id: sent.id,
      status: 'approved',
    });
    await expect(otp.verify({ id: sent.id }, code)).resolves.toMatchObject({
      ok: false,
      code: 'already_approved',
      status: 'approved',
      attemptsRemaining: 0,
    });

    const byNumber = await otp.status(phone);
    expect(byNumber).toMatchObject({
      id: sent.id,
      status: 'approved',
      deliveryStatus: 'queued',
      provider: null,
      phoneNumber: phone,
      expiresAt: sent.expiresAt,
      attempts: [],
    });
    expect(Date.parse(byNumber.createdAt)).toBeLessThanOrEqual(Date.now());
    await expect(otp.get(sent.id)).resolves.toEqual(byNumber);
  });

  it('a send repeated with the same Idempotency-Key returns the same OTP and queues nothing new', async () => {
    const phone = frMobile(7002);
    const first = await otp.send(phone, { idempotencyKey: 'signup-7002' });
    const again = await otp.send(phone, { idempotencyKey: 'signup-7002' });
    expect(again).toEqual(first);
    expect((await otp.status(phone)).id).toBe(first.id);
    const other = await otp.send(phone);
    expect(other.id).not.toBe(first.id);
  });

  it("the client's own retry after a lost answer gets the OTP the gateway created, not a second one", async () => {
    const phone = frMobile(7003);
    const created: string[] = [];
    let calls = 0;
    // The first answer is lost on the way back: the gateway created the OTP, the backend saw a network error.
    const lossy: FetchLike = async (url, init) => {
      calls++;
      const res = await fetch(url, init);
      if (calls > 1) return res;
      created.push(String(((await res.json()) as { id: string }).id));
      throw new TypeError('fetch failed');
    };
    const sent = await createOtpClient({ baseUrl, apiKey: KEY, fetch: lossy }).send(phone);
    expect(calls).toBe(2);
    expect(created).toEqual([sent.id]);
    expect((await otp.status(phone)).id).toBe(sent.id);
    const jobs = (await Promise.all(queues.shards.map((q) => q.getJobs(['waiting', 'delayed', 'prioritized'])))).flat();
    const forPhone = [];
    for (const j of jobs) if ((await otp.get(j.data.otpId)).phoneNumber === phone) forPhone.push(j.id);
    expect(forPhone).toEqual([sent.id]);
  });

  it('refusals of a code are results: unknown OTP, and out of attempts even for the right code', async () => {
    await expect(otp.verify({ id: `otp_${'0'.repeat(32)}` }, '123456')).resolves.toMatchObject({
      ok: false,
      code: 'otp_not_found',
    });
    const phone = frMobile(7004);
    const { id } = await otp.send(phone);
    const code = await codeOf(id);
    const wrong = code === '000000' ? '111111' : '000000';
    const remaining: (number | undefined)[] = [];
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      const r = await otp.verify({ id }, wrong);
      remaining.push(r.ok ? undefined : r.attemptsRemaining);
    }
    expect(remaining).toEqual([2, 1, 0]);
    await expect(otp.verify({ id }, code)).resolves.toMatchObject({ ok: false, code: 'otp_locked', status: 'locked' });
  });

  it('throws OtpGatewayError for invalid input, an unknown OTP, a bad key and an unreachable gateway', async () => {
    expect(await caught(otp.send('+3361234'))).toMatchObject({ status: 400, code: 'invalid_phone_number' });
    expect(await caught(otp.get(`otp_${'0'.repeat(32)}`))).toMatchObject({ status: 404, code: 'otp_not_found' });
    expect(await caught(otp.status(frMobile(7999)))).toMatchObject({ status: 404, code: 'otp_not_found' });

    const bad = createOtpClient({ baseUrl, apiKey: 'not-a-key' });
    expect(await caught(bad.send(frMobile(7005)))).toMatchObject({ status: 401, code: 'unauthorized' });
    expect(await caught(bad.verify({ phoneNumber: frMobile(7005) }, '123456'))).toMatchObject({ status: 401 });

    const closed = createOtpClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, apiKey: KEY });
    expect(await caught(closed.get(`otp_${'0'.repeat(32)}`))).toMatchObject({
      status: undefined,
      code: 'network_error',
    });
  });

  it('an OTP is invisible under another key, and a badly formed code throws without the code in the error', async () => {
    const phone = frMobile(7006);
    const { id } = await otp.send(phone);
    const code = await codeOf(id);
    const other = createOtpClient({ baseUrl, apiKey: OTHER_KEY });
    expect(await caught(other.get(id))).toMatchObject({ status: 404, code: 'otp_not_found' });
    await expect(other.verify({ id }, code)).resolves.toMatchObject({ ok: false, code: 'otp_not_found' });

    const err = await caught(otp.verify({ id }, `${code}123`));
    expect(err).toBeInstanceOf(OtpGatewayError);
    expect(err).toMatchObject({ status: 400, code: 'invalid_code_format' });
    expect(`${String(err)}\n${err.stack}\n${JSON.stringify(err)}`).not.toContain(code);
    // The refused tries cost nothing: the right code still works.
    await expect(otp.verify({ id }, code)).resolves.toMatchObject({ ok: true, id });
  });
});
