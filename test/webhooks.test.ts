import { createHmac } from 'node:crypto';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppProcess, startApp, waitForHttp } from './support/processes.js';
import { closeRedisClients, isolatedRedis } from './support/redis.js';
import { freePort } from './support/redis-server.js';

// The built callbacks process (pnpm --filter @otp-gateway/webhooks build first) over real HTTP, on its own Redis database. OTPs are laid out in Redis the way the
// API's SEND and the worker's BEGIN + ACCEPT scripts leave them (attempt 1 accepted, message id indexed).

const TWILIO_TOKEN = 'twilio-auth-token-0123456789abcdef';
const OCTOPUSH_TOKEN = 'octo-hook-token-9f8e7d6c5b4a3210';
const PUBLIC_BASE = 'https://otp.example.com';
const TWILIO_URL = `${PUBLIC_BASE}/webhooks/twilio/status`;

let app: AppProcess;
let redis: Redis;
let base: string;
let n = 0;

beforeAll(async () => {
  const db = await isolatedRedis();
  redis = db.redis;
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  app = startApp('webhooks', {
    REDIS_URL: db.url,
    HOST: '127.0.0.1',
    WEBHOOKS_PORT: String(port),
    PUBLIC_WEBHOOK_BASE_URL: PUBLIC_BASE,
    TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
    OCTOPUSH_WEBHOOK_TOKEN: OCTOPUSH_TOKEN,
  });
  await waitForHttp(`${base}/readyz`);
});

afterAll(async () => {
  await app?.stop();
  await closeRedisClients(redis);
});

/** A pending OTP whose attempt 1 went out through `provider` as message `messageId`. */
async function acceptedOtp(provider: 'twilio' | 'octopush' = 'twilio') {
  const id = `otp_wh${++n}`;
  const messageId = provider === 'twilio' ? `SM${String(n).padStart(32, '0')}` : `oct-${n}`;
  const now = Date.now();
  await redis.hset(`otp:o:${id}`, {
    id,
    key: 'k',
    phone: '+33612345678',
    hash: 'h',
    status: 'pending',
    ds: 'sent',
    provider,
    exp: now + 300_000,
    created: now,
    left: 5,
    max: 5,
    cc: '33',
    locale: 'fr',
    na: 1,
    sealed: 'sealed-code-blob',
    acc: 1,
    'a1.p': provider,
    'a1.o': 'accepted',
    'a1.m': messageId,
    'a1.s': 'queued',
    'a1.t': now,
    'a1.u': now,
  });
  await redis.pexpire(`otp:o:${id}`, 600_000);
  await redis.set(`otp:m:${provider}:${messageId}`, `${id}:1`, 'PX', 600_000);
  return { id, messageId, exp: now + 300_000 };
}

const otp = (id: string) => redis.hgetall(`otp:o:${id}`);

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

async function twilioPost(params: Record<string, string>, signature: string | null) {
  const res = await fetch(`${base}/webhooks/twilio/status`, {
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

async function octopushPost(token: string, body: Record<string, string>, as: 'json' | 'form' = 'json') {
  const res = await fetch(`${base}/webhooks/octopush/delivery/${token}`, {
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
    await app.waitForLog((l) => l.msg === 'delivery report applied' && l.otpId === o.id);
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
    expect(await redis.exists(`otp:cb:twilio:${o.messageId}`)).toBe(0);
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

  it('an undelivered report queues the resend {otpId}-r1 with the OTP data', async () => {
    const o = await acceptedOtp();
    const params = statusParams(o.messageId, 'undelivered', { ErrorCode: '30003' });
    expect((await twilioPost(params, sign(params))).status).toBe(200);
    expect(await otp(o.id)).toMatchObject({ ds: 'undelivered', acc: '', 'a1.o': 'undelivered', 'a1.e': '30003' });
    const queue = new Queue('otp-send', { connection: redis.duplicate() });
    try {
      const job = await queue.getJob(`${o.id}-r1`);
      expect(job?.name).toBe('send');
      expect(job?.data).toEqual({
        otpId: o.id,
        to: '+33612345678',
        locale: 'fr',
        sealedCode: 'sealed-code-blob',
        expiresAt: o.exp,
        callingCode: '33',
      });
    } finally {
      await queue.close();
    }
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
});
