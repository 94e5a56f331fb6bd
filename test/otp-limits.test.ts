import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Answer, frMobile, KEY_A, KEY_B, startTestApi, type TestApi } from './support/otp-harness.js';

const errorCode = (res: Answer) => (res.body['error'] as { code?: string } | undefined)?.code;

/** A 429 with the contract body and a Retry-After of whole seconds within [1, max]. */
function expect429(res: Answer, code: string, maxSeconds: number) {
  expect({ status: res.status, code: errorCode(res) }).toEqual({ status: 429, code });
  expect(res.body['error']).toEqual({ code, message: expect.stringMatching(/\S/) });
  const header = String(res.headers['retry-after']);
  expect(header).toMatch(/^\d+$/);
  expect(Number(header)).toBeGreaterThanOrEqual(1);
  expect(Number(header)).toBeLessThanOrEqual(maxSeconds);
}

const jobTotal = (t: TestApi) => t.jobTotal();

let cooldown: TestApi;
let window: TestApi;
let perKey: TestApi;
let perIp: TestApi;

beforeAll(async () => {
  [cooldown, window, perKey, perIp] = await Promise.all([
    startTestApi({ OTP_RESEND_COOLDOWN_SECONDS: '30' }),
    startTestApi({ OTP_RESEND_COOLDOWN_SECONDS: '0', OTP_MAX_SENDS_PER_NUMBER: '2', OTP_SEND_WINDOW_SECONDS: '120' }),
    startTestApi({ OTP_RESEND_COOLDOWN_SECONDS: '0', RATE_LIMIT_PER_KEY_PER_MINUTE: '4' }),
    startTestApi({ OTP_RESEND_COOLDOWN_SECONDS: '0', RATE_LIMIT_PER_IP_PER_MINUTE: '4' }),
  ]);
});

afterAll(async () => {
  await Promise.all([cooldown?.close(), window?.close(), perKey?.close(), perIp?.close()]);
});

describe('sends per number', () => {
  it('refuses a resend within OTP_RESEND_COOLDOWN_SECONDS with 429 resend_cooldown and Retry-After', async () => {
    const phone = frMobile(200);
    expect((await cooldown.send(phone)).status).toBe(202);
    const jobs = await jobTotal(cooldown);
    expect429(await cooldown.send(phone), 'resend_cooldown', 30);
    expect(await jobTotal(cooldown)).toBe(jobs);
    expect((await cooldown.send(frMobile(201))).status).toBe(202);
  });

  it('lets only one of two racing sends to the same number through the cooldown', async () => {
    const phone = frMobile(202);
    const answers = await Promise.all([cooldown.send(phone), cooldown.send(phone)]);
    expect(answers.map((r) => r.status).sort()).toEqual([202, 429]);
  });

  it('refuses sends past OTP_MAX_SENDS_PER_NUMBER in the window with 429 too_many_sends and Retry-After', async () => {
    const phone = frMobile(210);
    expect((await window.send(phone)).status).toBe(202);
    expect((await window.send(phone)).status).toBe(202);
    const jobs = await jobTotal(window);
    expect429(await window.send(phone), 'too_many_sends', 120);
    expect(await jobTotal(window)).toBe(jobs);
    expect((await window.send(frMobile(211))).status).toBe(202);
  });
});

describe('requests per API key and per client IP', () => {
  it('refuses requests past RATE_LIMIT_PER_KEY_PER_MINUTE with 429 and Retry-After, per key', async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < 4; i++) {
      const a =
        i % 2 ? await perKey.send(frMobile(300 + i)) : await perKey.call('GET', `/v1/otp/otp_${'0'.repeat(32)}`);
      answers.push(a);
    }
    expect(answers.map((a) => a.status)).toEqual([404, 202, 404, 202]);
    expect429(await perKey.send(frMobile(310)), 'rate_limited', 60);
    expect429(await perKey.verify({ phoneNumber: frMobile(301), code: '123456' }), 'rate_limited', 60);
    expect429(
      await perKey.call('GET', `/v1/otp/status?phoneNumber=${encodeURIComponent(frMobile(301))}`),
      'rate_limited',
      60,
    );
    // From another address the key is still over its limit; another key is not.
    expect429(await perKey.send(frMobile(311), { ip: '192.0.2.9' }), 'rate_limited', 60);
    expect((await perKey.send(frMobile(312), { key: KEY_B.secret })).status).toBe(202);
  });

  it('refuses requests past RATE_LIMIT_PER_IP_PER_MINUTE with 429 and Retry-After, whatever the key', async () => {
    const ip = '198.51.100.7';
    for (let i = 0; i < 4; i++) {
      const key = i % 2 ? KEY_A.secret : KEY_B.secret;
      expect((await perIp.send(frMobile(400 + i), { ip, key })).status).toBe(202);
    }
    expect429(await perIp.send(frMobile(410), { ip, key: KEY_A.secret }), 'rate_limited', 60);
    expect429(await perIp.send(frMobile(411), { ip, key: KEY_B.secret }), 'rate_limited', 60);
    expect429(await perIp.verify({ phoneNumber: frMobile(401), code: '123456' }, { ip }), 'rate_limited', 60);
    expect429(await perIp.call('GET', `/v1/otp/otp_${'0'.repeat(32)}`, { ip }), 'rate_limited', 60);
    expect((await perIp.send(frMobile(412), { ip: '198.51.100.8' })).status).toBe(202);
  });

  it('regression: a retry with the Idempotency-Key of an OTP that exists gets its answer past the limit', async () => {
    // the client lost the first answer and retries; meanwhile its address used up its requests
    const ip = '198.51.100.30';
    const headers = { 'idempotency-key': 'signup-limit-retry' };
    const first = await perIp.send(frMobile(460), { ip, headers });
    expect(first.status).toBe(202);
    for (let i = 0; i < 3; i++) expect((await perIp.send(frMobile(461 + i), { ip })).status).toBe(202);
    const jobs = await jobTotal(perIp);
    const retried = await perIp.send(frMobile(460), { ip, headers });
    expect(retried.status).toBe(202);
    expect(retried.body['id']).toBe(first.body['id']);
    expect(await jobTotal(perIp)).toBe(jobs);
    // anything else from that address is still refused, a new key included
    expect429(await perIp.send(frMobile(460), { ip, headers: { 'idempotency-key': 'another' } }), 'rate_limited', 60);
  });

  it('counts and limits verifies by phone number for a number that has no OTP', async () => {
    const ip = '198.51.100.20';
    const probe = () => perIp.verify({ phoneNumber: frMobile(450), code: '123456' }, { ip });
    const answers: Answer[] = [];
    for (let i = 0; i < 5; i++) answers.push(await probe());
    expect(answers.slice(0, 4).map((a) => a.status)).toEqual([404, 404, 404, 404]);
    expect429(answers[4]!, 'rate_limited', 60);
  });
});

describe('Idempotency-Key', () => {
  it('replays the first answer for the same key and body and queues exactly one job', async () => {
    const headers = { 'idempotency-key': 'order-42-login' };
    const body = { phoneNumber: frMobile(500), locale: 'fr' };
    const before = await jobTotal(cooldown);
    const first = await cooldown.call('POST', '/v1/otp/send', { body, headers });
    expect(first.status).toBe(202);
    const replays = await Promise.all([
      cooldown.call('POST', '/v1/otp/send', { body, headers }),
      cooldown.call('POST', '/v1/otp/send', { body, headers }),
    ]);
    for (const r of replays) {
      expect(r.status).toBe(202);
      expect(r.body).toEqual(first.body);
    }
    expect(await jobTotal(cooldown)).toBe(before + 1);
    expect((await cooldown.job(String(first.body['id'])))?.id).toBe(first.body['id']);
    // The OTP is the one that was sent: its code verifies under the replayed id.
    const id = String(first.body['id']);
    expect((await cooldown.verify({ id, code: await cooldown.codeOf(id) })).status).toBe(200);
  });

  it('creates one OTP and one job when the first request and its retry race', async () => {
    const headers = { 'idempotency-key': 'racing-retry' };
    const body = { phoneNumber: frMobile(530) };
    const before = await jobTotal(cooldown);
    const answers = await Promise.all(
      Array.from({ length: 4 }, () => cooldown.call('POST', '/v1/otp/send', { body, headers })),
    );
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 202]);
    expect(new Set(answers.map((a) => a.body['id'])).size).toBe(1);
    expect(await jobTotal(cooldown)).toBe(before + 1);
  });

  it('answers 422 to the same key with another body and sends nothing', async () => {
    const headers = { 'idempotency-key': 'signup-7' };
    const first = await cooldown.call('POST', '/v1/otp/send', { body: { phoneNumber: frMobile(510) }, headers });
    expect(first.status).toBe(202);
    const jobs = await jobTotal(cooldown);
    const other = await cooldown.call('POST', '/v1/otp/send', { body: { phoneNumber: frMobile(511) }, headers });
    expect(other.status).toBe(422);
    expect(other.body['error']).toEqual({ code: 'idempotency_key_reused', message: expect.stringMatching(/\S/) });
    const locale = await cooldown.call('POST', '/v1/otp/send', {
      body: { phoneNumber: frMobile(510), locale: 'de' },
      headers,
    });
    expect(locale.status).toBe(422);
    expect(await jobTotal(cooldown)).toBe(jobs);
    const status = await cooldown.call('GET', `/v1/otp/status?phoneNumber=${encodeURIComponent(frMobile(511))}`);
    expect(status.status).toBe(404);
    // The first OTP is untouched.
    const id = String(first.body['id']);
    expect((await cooldown.call('GET', `/v1/otp/${id}`)).body['status']).toBe('pending');
  });

  it('scopes Idempotency-Keys to the API key', async () => {
    const headers = { 'idempotency-key': 'shared-key' };
    const a = await cooldown.call('POST', '/v1/otp/send', { body: { phoneNumber: frMobile(520) }, headers });
    const b = await cooldown.call('POST', '/v1/otp/send', {
      body: { phoneNumber: frMobile(520) },
      headers,
      key: KEY_B.secret,
    });
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(b.body['id']).not.toBe(a.body['id']);
  });
});
