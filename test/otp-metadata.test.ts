import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frMobile, snapshot, startTestApi, type TestApi } from './support/otp-harness.js';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi({ OTP_RESEND_COOLDOWN_SECONDS: '0' });
});

afterAll(async () => {
  await api?.close();
});

describe('correlation metadata', () => {
  it('is kept with the OTP and returned by GET /v1/otp/{id} and by status', async () => {
    const metadata = { userId: 'u_42', flow: 'signup', 'session.id': 'a b c é' };
    const sent = await api.send(frMobile(501), { body: { phoneNumber: frMobile(501), metadata } });
    expect(sent.status).toBe(202);
    const id = String(sent.body['id']);
    const got = await api.call('GET', `/v1/otp/${id}`);
    expect(got.status).toBe(200);
    expect(got.body['metadata']).toEqual(metadata);
    const byPhone = await api.call('GET', `/v1/otp/status?phoneNumber=${encodeURIComponent(frMobile(501))}`);
    expect(byPhone.body['metadata']).toEqual(metadata);
  });

  it('is {} when none was given', async () => {
    const sent = await api.send(frMobile(502));
    const got = await api.call('GET', `/v1/otp/${String(sent.body['id'])}`);
    expect(got.body['metadata']).toEqual({});
  });

  const bad: [string, unknown][] = [
    ['eleven pairs', Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v']))],
    ['a number value', { n: 1 }],
    ['a nested object', { o: { a: 'b' } }],
    ['a key with a space', { 'a b': 'c' }],
    ['an empty key', { '': 'c' }],
    ['a key of 41 characters', { ['k'.repeat(41)]: 'v' }],
    ['a value of 257 characters', { k: 'v'.repeat(257) }],
    ['an array', ['a', 'b']],
    ['a string', 'userId=1'],
  ];
  for (const [what, metadata] of bad) {
    it(`with ${what} is refused with 400 and nothing is stored`, async () => {
      const before = await snapshot(api.db, api.store.prefix);
      const jobs = await api.jobTotal();
      const res = await api.send(frMobile(503), { body: { phoneNumber: frMobile(503), metadata } });
      expect(res.status).toBe(400);
      expect((res.body['error'] as { code: string }).code).toMatch(/^invalid_/);
      expect(await snapshot(api.db, api.store.prefix)).toBe(before);
      expect(await api.jobTotal()).toBe(jobs);
    });
  }

  it('a control character in a value is refused by the service too (400 invalid_metadata)', async () => {
    const before = await snapshot(api.db, api.store.prefix);
    const res = await api.send(frMobile(504), { body: { phoneNumber: frMobile(504), metadata: { k: 'a\u0007b' } } });
    expect(res.status).toBe(400);
    expect((res.body['error'] as { code: string }).code).toBe('invalid_metadata');
    expect(await snapshot(api.db, api.store.prefix)).toBe(before);
  });

  it('a retried Idempotency-Key with other metadata is refused as a reused key', async () => {
    const headers = { 'idempotency-key': 'meta-retry-1' };
    const first = await api.send(frMobile(505), {
      body: { phoneNumber: frMobile(505), metadata: { a: '1' } },
      headers,
    });
    expect(first.status).toBe(202);
    const same = await api.send(frMobile(505), { body: { phoneNumber: frMobile(505), metadata: { a: '1' } }, headers });
    expect(same.body['id']).toBe(first.body['id']);
    const jobs = await api.jobTotal();
    const other = await api.send(frMobile(505), {
      body: { phoneNumber: frMobile(505), metadata: { a: '2' } },
      headers,
    });
    expect(other.status).toBe(422);
    expect((other.body['error'] as { code: string }).code).toBe('idempotency_key_reused');
    // nothing queued for it (the request counters count it, as every request)
    expect(await api.jobTotal()).toBe(jobs);
  });
});
