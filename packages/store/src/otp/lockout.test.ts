import { deriveKeys, encryptCode, hashCode, newOtpId, numberToken } from '@otp-gateway/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from '../../../../test/support/redis.js';
import { createOtpRepo, type OtpRepo } from './otp.repo.js';

/**
 * The number lockout (OTP_NUMBER_MAX_FAILURES wrong codes lock a number for OTP_NUMBER_LOCK_SECONDS), with time
 * moved by the scripts' `now` argument. The lock must not slide: whoever knows a number must not be able to keep
 * it locked by spreading wrong codes.
 */
const keys = deriveKeys('lockout-test-secret-0123456789abcdefghijklmnop');
const LOCK_MS = 60_000;
const T0 = 1_900_000_000_000;
let store: IsolatedStore;
let repo: OtpRepo;

beforeAll(async () => {
  store = await isolatedRedis();
  repo = createOtpRepo(store.redis, store.ks, {
    rules: { maxFailures: 4, lockMs: LOCK_MS, cooldownMs: 0, maxSends: 1000, windowMs: 3_600_000 },
    retentionMs: 60_000,
  });
});
afterAll(async () => closeRedisClients(store?.redis));

async function newOtp(phone: string, now: number): Promise<string> {
  const token = numberToken(keys, 'shop', phone);
  const id = newOtpId(token);
  const r = await repo.create(
    {
      id,
      keyName: 'shop',
      country: 'FR',
      phoneNumber: phone,
      codeHash: hashCode(keys, id, '123456'),
      sealedCode: encryptCode(keys, id, '123456'),
      ttlMs: 600_000,
      maxAttempts: 20,
      callingCode: '33',
      locale: 'fr',
    },
    now,
  );
  expect(r.kind).toBe('created');
  return id;
}
const wrong = (id: string, now: number) => repo.verify({ by: 'id', id }, 'shop', () => 'wrong', now);

describe('the number lockout', () => {
  it('regression: wrong codes spread over time no longer slide the window until they lock the number', async () => {
    const phone = '+33612340001';
    const id = await newOtp(phone, T0);
    // 3 wrong codes (one short of the limit) early in a window, 1 more after the window that opened at the first
    // one ended: a sliding window counted 4 and locked; a fixed window counts 1.
    for (const dt of [0, 1000, LOCK_MS - 1000]) expect((await wrong(id, T0 + dt)).kind).toBe('wrong');
    expect((await wrong(id, T0 + LOCK_MS + 1)).kind).toBe('wrong');
    expect((await wrong(id, T0 + LOCK_MS + 2)).kind).toBe('wrong');
  });

  it('keeps the limit: the 4th wrong code in a window locks for lockMs from then, and the lock ends on time', async () => {
    const phone = '+33612340002';
    const id = await newOtp(phone, T0);
    // regression: the OTP has 20 attempts, but the answers count down to the number's lock, which comes first
    const left: unknown[] = [];
    for (const dt of [0, 10, 20, 30]) left.push(await wrong(id, T0 + dt));
    expect(left.map((r) => (r as { attemptsRemaining: number }).attemptsRemaining)).toEqual([3, 2, 1, 0]);
    const locked = await wrong(id, T0 + 40);
    expect(locked).toMatchObject({ kind: 'limited', scope: 'number_locked' });
    // wrong codes during the lock are refused without being counted, so they do not move its end
    for (const dt of [1000, 30_000, LOCK_MS - 10]) {
      expect(await wrong(id, T0 + dt)).toMatchObject({ kind: 'limited', retryAfterMs: T0 + 30 + LOCK_MS - (T0 + dt) });
    }
    // lockMs after the 4th wrong code, the number may verify again (a fresh window)
    expect((await wrong(id, T0 + 30 + LOCK_MS)).kind).toBe('wrong');
  });
});
