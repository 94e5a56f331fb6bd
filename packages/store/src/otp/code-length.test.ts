import { deriveKeys, hashCode } from '@otp-gateway/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OtpFixtures, otpFixtures } from '../../../../test/support/otp-fixtures.js';
import { TEST_SECRET } from '../../../../test/support/processes.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from '../../../../test/support/redis.js';
import { OTP_FIELDS } from './otp.record.js';
import { createOtpRepo, type OtpRepo } from './otp.repo.js';

/** A verify checks a code's length against the OTP's own (its key's setting when it was sent), counting nothing. */
const keys = deriveKeys(TEST_SECRET);
let store: IsolatedStore;
let fixtures: OtpFixtures;
let repo: OtpRepo;

beforeAll(async () => {
  store = await isolatedRedis();
  fixtures = otpFixtures(store, { keyName: 'shop' });
  repo = createOtpRepo(store.redis, store.ks, {
    rules: { maxFailures: 10, lockMs: 60_000, cooldownMs: 0, maxSends: 100, windowMs: 3_600_000 },
    retentionMs: 60_000,
  });
});
afterAll(async () => {
  await fixtures?.close();
  await closeRedisClients(store?.redis);
});

/** Verifies `code` for OTP `id` as the API does when its key's code length is `keyLength` now. */
const verify = (id: string, code: string, keyLength: number) =>
  repo.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, code), 0, { given: code.length, keyLength });
const left = async (id: string) => (await fixtures.record(id))[OTP_FIELDS.left];

describe('a code of another length than its OTP', () => {
  it("is malformed whatever the key's length is now, and counts nothing; the OTP's own length verifies", async () => {
    const { id } = await fixtures.created({ codeLength: 6 });
    expect(await verify(id, '12345678', 8)).toEqual({ kind: 'bad_format', codeLength: 6 });
    expect(await left(id)).toBe('5');
    expect(await verify(id, '123456', 8)).toMatchObject({ kind: 'approved' });
  });

  it("on a record without its length (sent before it was recorded), the key's current length decides", async () => {
    const { id } = await fixtures.created();
    expect(await verify(id, '12345678', 6)).toEqual({ kind: 'bad_format', codeLength: 6 });
    expect(await verify(id, '000000', 6)).toMatchObject({ kind: 'wrong', attemptsRemaining: 4 });
  });
});
