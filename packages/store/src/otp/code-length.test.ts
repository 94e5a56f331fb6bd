import { deriveKeys, encryptCode, hashCode, newOtpId, numberToken } from '@otp-gateway/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from '../../../../test/support/redis.js';
import { OTP_FIELDS, otpKeys } from './otp.record.js';
import { createOtpRepo, type OtpRepo } from './otp.repo.js';

/** A verify checks a code's length against the OTP's own (its key's setting when it was sent), counting nothing. */
const keys = deriveKeys('code-length-test-secret-0123456789abcdefghijkl');
let store: IsolatedStore;
let repo: OtpRepo;
let n = 0;

beforeAll(async () => {
  store = await isolatedRedis();
  repo = createOtpRepo(store.redis, store.ks, {
    rules: { maxFailures: 10, lockMs: 60_000, cooldownMs: 0, maxSends: 100, windowMs: 3_600_000 },
    retentionMs: 60_000,
  });
});
afterAll(async () => closeRedisClients(store?.redis));

async function created(codeLength?: number) {
  const phone = `+336${String(30_000_000 + ++n)}`;
  const id = newOtpId(numberToken(keys, 'shop', phone));
  const r = await repo.create({
    id,
    keyName: 'shop',
    phoneNumber: phone,
    codeHash: hashCode(keys, id, '123456'),
    sealedCode: encryptCode(keys, id, '123456'),
    ttlMs: 300_000,
    maxAttempts: 3,
    callingCode: '33',
    country: 'FR',
    locale: 'fr',
    ...(codeLength ? { codeLength } : {}),
  });
  if (r.kind !== 'created') throw new Error(r.kind);
  return id;
}
const left = async (id: string) => store.redis.hget(otpKeys(store.ks, id).otp, OTP_FIELDS.left);

describe('a code of another length than its OTP', () => {
  it("is malformed whatever the key's length is now, and counts nothing; the OTP's own length verifies", async () => {
    const id = await created(6);
    const verify = (code: string, keyLength: number) =>
      repo.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, code), 0, { given: code.length, keyLength });
    expect(await verify('12345678', 8)).toEqual({ kind: 'bad_format', codeLength: 6 });
    expect(await left(id)).toBe('3');
    expect(await verify('123456', 8)).toMatchObject({ kind: 'approved' });
  });

  it("on a record without its length (sent before it was recorded), the key's current length decides", async () => {
    const id = await created();
    const verify = (code: string, keyLength: number) =>
      repo.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, code), 0, { given: code.length, keyLength });
    expect(await verify('12345678', 6)).toEqual({ kind: 'bad_format', codeLength: 6 });
    expect(await verify('000000', 6)).toMatchObject({ kind: 'wrong', attemptsRemaining: 2 });
  });
});
