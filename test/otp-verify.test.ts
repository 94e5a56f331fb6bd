import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Answer, frMobile, KEY_B, startTestApi, type TestApi } from './support/otp-harness.js';

const errorCode = (res: Answer) => (res.body['error'] as { code?: string } | undefined)?.code;
const otherCode = (code: string) => (code === '000000' ? '111111' : '000000');

let api: TestApi;
/** A second API instance on the same database, as a second replica would be. */
let replica: TestApi;
let strict: TestApi;

beforeAll(async () => {
  api = await startTestApi({
    OTP_RESEND_COOLDOWN_SECONDS: '0',
    OTP_MAX_SENDS_PER_NUMBER: '1000',
    OTP_MAX_ATTEMPTS: '3',
    OTP_TTL_SECONDS: '60',
  });
  replica = await startTestApi(
    {
      OTP_RESEND_COOLDOWN_SECONDS: '0',
      OTP_MAX_SENDS_PER_NUMBER: '1000',
      OTP_MAX_ATTEMPTS: '3',
      OTP_TTL_SECONDS: '60',
    },
    api.store,
  );
  strict = await startTestApi({
    OTP_RESEND_COOLDOWN_SECONDS: '0',
    OTP_MAX_SENDS_PER_NUMBER: '1000',
    OTP_MAX_ATTEMPTS: '3',
    OTP_NUMBER_MAX_FAILURES: '4',
    OTP_NUMBER_LOCK_SECONDS: '120',
  });
});

afterAll(async () => {
  await replica?.close();
  await api?.close();
  await strict?.close();
});

async function sendAndLearn(t: TestApi, phone: string): Promise<{ id: string; code: string }> {
  const res = await t.send(phone);
  expect(res.status).toBe(202);
  const id = String(res.body['id']);
  return { id, code: await t.codeOf(id) };
}

describe('verification is atomic', () => {
  it('approves the right code once when two verifies race on two API instances', async () => {
    for (let i = 0; i < 10; i++) {
      const phone = frMobile(100 + i);
      const { id, code } = await sendAndLearn(api, phone);
      const [a, b] = await Promise.all([
        api.verify(i % 2 ? { id, code } : { phoneNumber: phone, code }),
        replica.verify({ id, code }),
      ]);
      const statuses = [a.status, b.status].sort();
      expect(statuses, `round ${i}`).toEqual([200, 409]);
      const loser = a.status === 200 ? b : a;
      expect(errorCode(loser)).toBe('already_approved');
    }
  });

  it('approves exactly one of many concurrent verifies of the right code', async () => {
    const { id, code } = await sendAndLearn(api, frMobile(120));
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? api : replica).verify({ id, code })),
    );
    expect(answers.filter((r) => r.status === 200)).toHaveLength(1);
    expect(answers.filter((r) => r.status !== 200).every((r) => r.status === 409)).toBe(true);
  });

  it('refuses the right code once it has been approved', async () => {
    const { id, code } = await sendAndLearn(api, frMobile(121));
    expect((await api.verify({ id, code })).status).toBe(200);
    const again = await api.verify({ id, code });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ error: { code: 'already_approved' }, status: 'approved', attemptsRemaining: 0 });
    expect((await api.call('GET', `/v1/otp/${id}`)).body['status']).toBe('approved');
  });
});

describe('wrong codes and lockout', () => {
  it('costs one attempt per wrong code and locks after OTP_MAX_ATTEMPTS; then even the right code fails', async () => {
    const phone = frMobile(130);
    const { id, code } = await sendAndLearn(api, phone);
    const wrong = otherCode(code);

    const first = await api.verify({ id, code: wrong });
    expect(first.status).toBe(422);
    expect(first.body).toMatchObject({ error: { code: 'wrong_code' }, id, status: 'pending', attemptsRemaining: 2 });
    const second = await api.verify({ phoneNumber: phone, code: wrong });
    expect(second.body).toMatchObject({ status: 'pending', attemptsRemaining: 1 });
    const third = await api.verify({ id, code: wrong });
    expect(third.status).toBeGreaterThanOrEqual(400);
    expect(third.status).toBeLessThan(500);
    expect(third.body).toMatchObject({ status: 'locked', attemptsRemaining: 0 });

    const right = await api.verify({ id, code });
    expect(right.status).not.toBe(200);
    expect(right.status).toBeGreaterThanOrEqual(400);
    expect(right.status).toBeLessThan(500);
    expect(right.body).toMatchObject({ error: { code: 'otp_locked' }, status: 'locked', attemptsRemaining: 0 });
    expect((await api.verify({ phoneNumber: phone, code })).status).not.toBe(200);
    expect((await api.call('GET', `/v1/otp/${id}`)).body['status']).toBe('locked');
  });

  it('locks after the last attempt even when the wrong codes race', async () => {
    const { id, code } = await sendAndLearn(api, frMobile(131));
    const wrong = otherCode(code);
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 ? api : replica).verify({ id, code: wrong })),
    );
    expect(answers.filter((r) => r.body['error'] && errorCode(r) === 'wrong_code')).toHaveLength(3);
    expect((await api.verify({ id, code })).status).not.toBe(200);
  });
});

describe('expiry', () => {
  it('answers expired once OTP_TTL_SECONDS have passed, for the right code too, and GET shows expired', async () => {
    const phone = frMobile(140);
    const { id, code } = await sendAndLearn(api, phone);
    api.offsetMs += 59_000;
    expect((await api.call('GET', `/v1/otp/${id}`)).body['status']).toBe('pending');
    api.offsetMs += 1_500;
    try {
      expect((await api.call('GET', `/v1/otp/${id}`)).body['status']).toBe('expired');
      const wrong = await api.verify({ id, code: otherCode(code) });
      expect(wrong.status).toBe(410);
      expect(wrong.body).toMatchObject({ error: { code: 'otp_expired' }, status: 'expired' });
      const right = await api.verify({ phoneNumber: phone, code });
      expect(right.status).toBe(410);
      expect(right.body).toMatchObject({ error: { code: 'otp_expired' }, status: 'expired' });
      expect((await api.call('GET', `/v1/otp/status?phoneNumber=${encodeURIComponent(phone)}`)).body['status']).toBe(
        'expired',
      );
    } finally {
      api.offsetMs -= 60_500;
    }
  });
});

describe('a new send to the same number replaces the pending code', () => {
  it('refuses the old code with otp_replaced and accepts the new one', async () => {
    const phone = frMobile(150);
    const old = await sendAndLearn(api, phone);
    const fresh = await sendAndLearn(api, phone);
    expect(fresh.id).not.toBe(old.id);

    const byOldId = await api.verify({ id: old.id, code: old.code });
    expect(byOldId.status).toBe(410);
    expect(byOldId.body).toMatchObject({ error: { code: 'otp_replaced' }, id: old.id, status: 'expired' });
    if (old.code !== fresh.code) {
      const byPhone = await api.verify({ phoneNumber: phone, code: old.code });
      expect(byPhone.status).not.toBe(200);
    }
    expect((await api.call('GET', `/v1/otp/${old.id}`)).body['status']).toBe('expired');
    expect(await api.verify({ phoneNumber: phone, code: fresh.code })).toMatchObject({
      status: 200,
      body: { id: fresh.id, status: 'approved' },
    });
  });

  it('leaves exactly one pending code when sends to the same number race', async () => {
    const phone = frMobile(152);
    const sent = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? api : replica).send(phone)));
    expect(sent.every((r) => r.status === 202)).toBe(true);
    const statuses = await Promise.all(sent.map((r) => api.call('GET', `/v1/otp/${String(r.body['id'])}`)));
    expect(statuses.filter((r) => r.body['status'] === 'pending')).toHaveLength(1);
    const newest = await api.call('GET', `/v1/otp/status?phoneNumber=${encodeURIComponent(phone)}`);
    expect(newest.body['status']).toBe('pending');
  });

  it('does not replace the code of the same number under another key', async () => {
    const phone = frMobile(151);
    const mine = await sendAndLearn(api, phone);
    expect((await api.send(phone, { key: KEY_B.secret })).status).toBe(202);
    expect((await api.verify({ id: mine.id, code: mine.code })).status).toBe(200);
  });
});

describe('consecutive failures per number (OTP_NUMBER_MAX_FAILURES)', () => {
  it('survive new sends and, past the limit, refuse sends and verifies with 429 number_locked', async () => {
    const phone = frMobile(160);
    const a = await sendAndLearn(strict, phone);
    for (let i = 0; i < 3; i++) expect((await strict.verify({ id: a.id, code: otherCode(a.code) })).status).toBe(422);
    // 3 failures so far, the OTP is locked; a new send is still allowed (limit 4).
    const b = await sendAndLearn(strict, phone);
    // the 4th wrong code locks the number: its answer says no attempt is left, though b has 2 of its own
    const fourth = await strict.verify({ phoneNumber: phone, code: otherCode(b.code) });
    expect(fourth.status).toBe(422);
    expect(fourth.body).toMatchObject({ status: 'pending', attemptsRemaining: 0 });

    const verify = await strict.verify({ id: b.id, code: b.code });
    expect(verify.status).toBe(429);
    expect(errorCode(verify)).toBe('number_locked');
    const retry = Number(verify.headers['retry-after']);
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(120);

    const send = await strict.send(phone);
    expect(send.status).toBe(429);
    expect(errorCode(send)).toBe('number_locked');
    expect(Number(send.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(send.headers['retry-after'])).toBeLessThanOrEqual(120);

    // Another number is not affected.
    expect((await strict.send(frMobile(161))).status).toBe(202);
  });

  it('reset on a success', async () => {
    const phone = frMobile(170);
    const a = await sendAndLearn(strict, phone);
    for (let i = 0; i < 2; i++) expect((await strict.verify({ id: a.id, code: otherCode(a.code) })).status).toBe(422);
    expect((await strict.verify({ id: a.id, code: a.code })).status).toBe(200);
    // Without the reset, 2 + 3 failures would pass the limit of 4.
    const b = await sendAndLearn(strict, phone);
    for (let i = 0; i < 3; i++) expect((await strict.verify({ id: b.id, code: otherCode(b.code) })).status).toBe(422);
    const c = await sendAndLearn(strict, phone);
    expect((await strict.verify({ id: c.id, code: c.code })).status).toBe(200);
  });
});
