import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageKeys, resendJobId } from '../packages/store/src/index.js';
import { type OtpFixtures, otpFixtures } from './support/otp-fixtures.js';
import { dumpRedis } from './support/otp-harness.js';
import { type AppProcess, startApp, waitForHttp } from './support/processes.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from './support/redis.js';
import { freePort } from './support/redis-server.js';

// The built callbacks process over real HTTP, on its own key prefix. OTPs are laid out by the store's own scripts
// the way the API and a worker leave them (attempt 1 accepted, message id indexed).

const TWILIO_TOKEN = 'twilio-auth-token-0123456789abcdef';
const OCTOPUSH_TOKEN = 'octo-hook-token-9f8e7d6c5b4a3210';
const OCTOPUSH_PREVIOUS = 'octo-previous-token-0011223344556677';
const PUBLIC_BASE = 'https://otp.example.com';
const TWILIO_URL = `${PUBLIC_BASE}/webhooks/twilio/status`;

let app: AppProcess;
let store: IsolatedStore;
let fixtures: OtpFixtures;
let base: string;
let n = 0;

beforeAll(async () => {
  store = await isolatedRedis();
  fixtures = otpFixtures(store);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  app = startApp('webhooks', {
    ...store.env,
    HOST: '127.0.0.1',
    WEBHOOKS_PORT: String(port),
    PUBLIC_WEBHOOK_BASE_URL: PUBLIC_BASE,
    TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
    OCTOPUSH_WEBHOOK_TOKEN: OCTOPUSH_TOKEN,
    OCTOPUSH_WEBHOOK_TOKEN_PREVIOUS: OCTOPUSH_PREVIOUS,
  });
  await waitForHttp(`${base}/readyz`);
});

afterAll(async () => {
  await app?.stop();
  await fixtures?.close();
  await closeRedisClients(store?.redis);
});

/** A pending OTP whose attempt 1 went out through `provider` as message `messageId`. */
async function acceptedOtp(provider: 'twilio' | 'octopush' = 'twilio') {
  const messageId = provider === 'twilio' ? `SM${String(++n).padStart(32, '0')}` : `oct-${++n}`;
  const o = await fixtures.accepted(provider, messageId, { phoneNumber: '+33612345678' });
  return { ...o, messageId };
}

const otp = (id: string) => fixtures.record(id);

/** Twilio's recipe: HMAC-SHA1 over the URL then each parameter name and value sorted by name, base64. */
function sign(params: Record<string, string>, token = TWILIO_TOKEN, url = TWILIO_URL): string {
  const data = Object.keys(params)
    .sort()
    .reduce((acc, k) => acc + k + params[k], url);
  return createHmac('sha1', token).update(data, 'utf8').digest('base64');
}

const statusParams = (messageId: string, status: string, extra: Record<string, string> = {}) => ({
  AccountSid: 'AC00000000000000000000000000000000',
  MessageSid: messageId,
  SmsSid: messageId,
  MessageStatus: status,
  SmsStatus: status,
  To: '+33612345678',
  From: '+15005550006',
  ApiVersion: '2010-04-01',
  ...extra,
});

/** `query`: what the worker's StatusCallback adds (`?otp=&attempt=`); Twilio signs the URL with it. */
async function twilioPost(params: Record<string, string>, signature: string | null, query = '') {
  const res = await fetch(`${base}/webhooks/twilio/status${query}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(signature === null ? {} : { 'x-twilio-signature': signature }),
    },
    body: new URLSearchParams(params).toString(),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, any>) : {} };
}

async function octopushPost(token: string, body: Record<string, string>, as: 'json' | 'form' = 'json', origin = base) {
  const res = await fetch(`${origin}/webhooks/octopush/delivery/${token}`, {
    method: 'POST',
    headers: { 'content-type': as === 'json' ? 'application/json' : 'application/x-www-form-urlencoded' },
    body: as === 'json' ? JSON.stringify(body) : new URLSearchParams(body).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

describe('Twilio status callbacks', () => {
  it('a correctly signed delivered report moves the OTP to delivered', async () => {
    const o = await acceptedOtp();
    const params = statusParams(o.messageId, 'delivered');
    const signature = sign(params);
    expect((await twilioPost(params, signature)).status).toBe(200);
    expect(await otp(o.id)).toMatchObject({ ds: 'delivered', 'a1.o': 'delivered', 'a1.s': 'delivered' });
    await app.waitForLog((l) => l.msg === 'request completed' && l.otpId === o.id && l.report === 'applied');
    expect(app.output()).not.toContain(signature);
  });

  it('refuses forged, tampered and unsigned reports with 403 and changes nothing', async () => {
    const o = await acceptedOtp();
    const before = await otp(o.id);
    const params = statusParams(o.messageId, 'delivered');
    const tampered = { ...params, MessageStatus: 'undelivered', ErrorCode: '30003' };
    const attempts = [
      await twilioPost(params, sign(params, 'some-other-auth-token-000000000000')),
      await twilioPost(tampered, sign(params)),
      await twilioPost(params, null),
      await twilioPost(params, sign(params, TWILIO_TOKEN, 'https://attacker.example.com/webhooks/twilio/status')),
    ];
    for (const res of attempts) {
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('invalid_signature');
    }
    expect(await otp(o.id)).toEqual(before);
    expect(await store.redis.exists(messageKeys(store.ks, 'twilio', o.messageId).early)).toBe(0);
  });

  it('accepts a signed report carrying a parameter the gateway does not know', async () => {
    const o = await acceptedOtp();
    const params = statusParams(o.messageId, 'delivered', { RawDlrDoneDate: '2401011200', NewTwilioField: 'x y+z' });
    expect((await twilioPost(params, sign(params))).status).toBe(200);
    expect((await otp(o.id)).ds).toBe('delivered');
  });

  it('keeps delivered when a late sent arrives', async () => {
    const o = await acceptedOtp();
    const delivered = statusParams(o.messageId, 'delivered');
    const sent = statusParams(o.messageId, 'sent');
    expect((await twilioPost(delivered, sign(delivered))).status).toBe(200);
    expect((await twilioPost(sent, sign(sent))).status).toBe(200);
    expect(await otp(o.id)).toMatchObject({ ds: 'delivered', 'a1.o': 'delivered', 'a1.s': 'delivered' });
  });

  it('an undelivered report queues the resend {otpId}-r1', async () => {
    const o = await acceptedOtp();
    const params = statusParams(o.messageId, 'undelivered', { ErrorCode: '30003' });
    expect((await twilioPost(params, sign(params))).status).toBe(200);
    expect(await otp(o.id)).toMatchObject({ ds: 'undelivered', acc: '', 'a1.o': 'undelivered', 'a1.e': '30003' });
    const job = await fixtures.queues.forOtp(o.id).getJob(resendJobId(o.id, 1));
    expect(job?.name).toBe('resend');
    expect(job?.data).toEqual({ otpId: o.id, after: 1 });
  });
});

describe("Twilio status callbacks that name their attempt (the worker's StatusCallback)", () => {
  const query = (id: string, attempt = 1) => `?otp=${id}&attempt=${attempt}`;

  it('apply to the attempt the signed URL names, with no message index entry', async () => {
    const messageId = `SM${String(++n).padStart(32, '0')}`;
    const o = await fixtures.accepted('twilio', messageId, { phoneNumber: '+33612345678', named: true });
    expect(await store.redis.exists(messageKeys(store.ks, 'twilio', messageId).index)).toBe(0);
    const params = statusParams(messageId, 'delivered');
    const q = query(o.id);
    expect((await twilioPost(params, sign(params, TWILIO_TOKEN, TWILIO_URL + q), q)).status).toBe(200);
    expect(await otp(o.id)).toMatchObject({ ds: 'delivered', 'a1.o': 'delivered', 'a1.s': 'delivered' });
    expect(await store.redis.exists(messageKeys(store.ks, 'twilio', messageId).early)).toBe(0);
  });

  it('the query is signed: a report signed for one attempt and posted naming another is refused 403', async () => {
    const messageId = `SM${String(++n).padStart(32, '0')}`;
    const o = await fixtures.accepted('twilio', messageId, { phoneNumber: '+33612345678', named: true });
    const before = await otp(o.id);
    const params = statusParams(messageId, 'undelivered', { ErrorCode: '30003' });
    const signature = sign(params, TWILIO_TOKEN, TWILIO_URL + query(o.id, 1));
    for (const q of [query(o.id, 2), '', `?otp=${o.id}`]) {
      const res = await twilioPost(params, signature, q);
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('invalid_signature');
    }
    expect(await otp(o.id)).toEqual(before);
  });

  it('a report that beats the worker is kept on its attempt (200) until the acceptance takes it', async () => {
    const o = await fixtures.sending('twilio', { phoneNumber: '+33612345678' });
    const messageId = `SM${String(++n).padStart(32, '0')}`;
    const params = statusParams(messageId, 'delivered');
    const q = query(o.id);
    expect((await twilioPost(params, sign(params, TWILIO_TOKEN, TWILIO_URL + q), q)).status).toBe(200);
    expect(await otp(o.id)).toMatchObject({ 'a1.o': 'sending', 'a1.er': expect.stringContaining(messageId) });
    const early = await fixtures.delivery.accepted(o.id, 1, 'twilio', {
      messageId,
      providerStatus: 'queued',
      hadFailures: false,
      reportsNameAttempt: true,
    });
    expect(early).toHaveLength(1);
    expect(JSON.parse(early[0] ?? '{}')).toMatchObject({ provider: 'twilio', messageId, status: 'delivered' });
  });

  it('a signed query that names nothing usable falls back to the message index', async () => {
    const o = await acceptedOtp();
    const params = statusParams(o.messageId, 'delivered');
    const q = '?otp=not-an-otp&attempt=1';
    expect((await twilioPost(params, sign(params, TWILIO_TOKEN, TWILIO_URL + q), q)).status).toBe(200);
    expect((await otp(o.id)).ds).toBe('delivered');
  });
});

describe('Octopush delivery callbacks', () => {
  const report = (messageId: string, status: string) => ({
    message_id: messageId,
    number: '+33612345678',
    status,
    delivery_date: '2026-01-02 03:04:05',
  });

  it('applies a JSON report and a form-encoded one carrying the right token', async () => {
    const a = await acceptedOtp('octopush');
    const b = await acceptedOtp('octopush');
    expect((await octopushPost(OCTOPUSH_TOKEN, report(a.messageId, 'DELIVERED'), 'json')).status).toBe(200);
    expect((await octopushPost(OCTOPUSH_TOKEN, report(b.messageId, 'DELIVERED'), 'form')).status).toBe(200);
    for (const o of [a, b]) {
      expect(await otp(o.id)).toMatchObject({ ds: 'delivered', 'a1.o': 'delivered', 'a1.s': 'DELIVERED' });
    }
  });

  it('refuses a wrong token with 403, changes nothing, and never logs the token', async () => {
    const o = await acceptedOtp('octopush');
    const before = await otp(o.id);
    const wrong = await octopushPost(`${OCTOPUSH_TOKEN.slice(0, -1)}x`, report(o.messageId, 'NOT_DELIVERED'));
    expect(wrong.status).toBe(403);
    expect(wrong.body.error.code).toBe('invalid_token');
    expect((await octopushPost('short', report(o.messageId, 'NOT_DELIVERED'))).status).toBe(403);
    expect(await otp(o.id)).toEqual(before);
    // the right token was used by the previous test and this one sent near misses: none of it is in the logs
    await app.waitForLog((l) => l.msg === 'callback token refused');
    expect(app.logs().some((l) => (l.req as { url?: string } | undefined)?.url?.includes('[redacted]'))).toBe(true);
    expect(app.output()).not.toContain(OCTOPUSH_TOKEN);
    expect(app.output()).not.toContain(OCTOPUSH_TOKEN.slice(0, -1));
    expect(app.output()).not.toContain(TWILIO_TOKEN);
    expect(app.output()).not.toContain('+33612345678');
  });

  it('regression: refuses reports of the wrong shape with 400 and keeps nothing for them', async () => {
    const o = await acceptedOtp('octopush');
    const before = await otp(o.id);
    const long = 'x'.repeat(500);
    for (const body of [
      report(long, 'DELIVERED'),
      report('id with spaces', 'DELIVERED'),
      report(o.messageId, '<script>'),
      { ...report(o.messageId, 'NOT_DELIVERED'), number: 'not a number' },
      { number: '+33612345678' },
    ]) {
      const res = await octopushPost(OCTOPUSH_TOKEN, body as Record<string, string>);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('invalid_request');
    }
    expect(await store.redis.exists(messageKeys(store.ks, 'octopush', long).early)).toBe(0);
    expect(await otp(o.id)).toEqual(before);
    // a signed Twilio report whose MessageSid is not one is refused the same way
    const params = statusParams('not-a-sid', 'delivered');
    expect((await twilioPost(params, sign(params))).status).toBe(400);
  });

  it('regression: a report naming another number than the OTP changes nothing (no resend)', async () => {
    const o = await acceptedOtp('octopush');
    const before = await otp(o.id);
    // everything under the prefix: the OTP, its due set, the provider's circuit, the queues (a resend job)
    const everything = async () => (await dumpRedis(store.redis, store.prefix)).map((k) => [k.key, k.values]);
    const all = await everything();
    const forged = { ...report(o.messageId, 'NOT_DELIVERED'), number: '+33699999999' };
    expect((await octopushPost(OCTOPUSH_TOKEN, forged)).status).toBe(200);
    expect(await otp(o.id)).toEqual(before);
    expect(await everything()).toEqual(all);
    expect((await octopushPost(OCTOPUSH_TOKEN, report(o.messageId, 'DELIVERED'))).status).toBe(200);
    expect(await otp(o.id)).toMatchObject({ ds: 'delivered' });
  });

  it('accepts the previous token too while a rotation is under way (OCTOPUSH_WEBHOOK_TOKEN_PREVIOUS)', async () => {
    const o = await acceptedOtp('octopush');
    expect((await octopushPost(OCTOPUSH_PREVIOUS, report(o.messageId, 'DELIVERED'))).status).toBe(200);
    expect(await otp(o.id)).toMatchObject({ ds: 'delivered' });
    expect(app.output()).not.toContain(OCTOPUSH_PREVIOUS);
  });

  it('counts reports kept for message ids not recorded yet in otp_callback_early_reports_total', async () => {
    expect((await octopushPost(OCTOPUSH_TOKEN, report('oct-not-yet-recorded', 'DELIVERED'))).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/otp_callback_early_reports_total\{provider="octopush",outcome="kept"\} [1-9]/);
  });

  it('regression: genuine callbacks are never limited, however many or whoever shares their address; refusals past WEBHOOKS_RATE_LIMIT_PER_IP_PER_MINUTE get 429', async () => {
    const port = await freePort();
    const own = await isolatedRedis();
    const limited = startApp('webhooks', {
      ...own.env,
      HOST: '127.0.0.1',
      WEBHOOKS_PORT: String(port),
      OCTOPUSH_WEBHOOK_TOKEN: OCTOPUSH_TOKEN,
      WEBHOOKS_RATE_LIMIT_PER_IP_PER_MINUTE: '3',
    });
    try {
      const origin = `http://127.0.0.1:${port}`;
      await waitForHttp(`${origin}/readyz`);
      const post = async (token: string, id: string) =>
        (await octopushPost(token, report(id, 'DELIVERED'), 'json', origin)).status;
      // every provider callback comes from one address (behind a proxy): ten times the limit, all answered
      const genuine: number[] = [];
      for (let i = 0; i < 30; i++) genuine.push(await post(OCTOPUSH_TOKEN, `oct-many-${i}`));
      expect(genuine.every((s) => s === 200)).toBe(true);
      // a token guesser at the same address: its refusals are counted, past the limit answered 429; the
      // providers' callbacks between its guesses still go through
      const guesses: number[] = [];
      for (let i = 0; i < 6; i++) {
        guesses.push(await post(`guess-${i}-0123456789abcdef`, `oct-guess-${i}`));
        expect(await post(OCTOPUSH_TOKEN, `oct-between-${i}`)).toBe(200);
      }
      // the counter may straddle a minute boundary: at most one window reset in these quick requests
      expect(guesses.slice(0, 3)).toEqual([403, 403, 403]);
      expect(guesses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
      // health checks are not counted
      expect((await fetch(`${origin}/healthz`)).status).toBe(200);
    } finally {
      await limited.stop();
      await closeRedisClients(own.redis);
    }
  });
});
