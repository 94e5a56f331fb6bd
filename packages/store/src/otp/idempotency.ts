import { createHash } from 'node:crypto';
import { bucketTag, type Keyspace } from '../keyspace.js';
import type { RedisClient } from '../redis/connection.js';
import { defineScript } from '../redis/script.js';

/**
 * Idempotency-Key records: the first request with a key claims it for an OTP id, in its own slot (a hash bucket
 * of the key, which the client chooses, so it never picks a slot). The OTP is created in a second step under
 * that id; a retry with the same key and body finds the claim and gets the same OTP, created then if the first
 * request never got that far (a crash, a timeout). A different body under the same key is a conflict.
 * Record: HASH {fp: keyed fingerprint of the body, id: OTP id}, kept IDEMPOTENCY_TTL_MS.
 */
const CLAIM = defineScript({
  name: 'otpIdemClaim',
  doc: 'claim an Idempotency-Key for an OTP id, or answer the id that claimed it',
  keys: ['record'],
  args: ['fingerprint', 'otpId', 'ttlMs'],
  body: `
local prev = redis.call('HMGET', K.record, 'fp', 'id')
if prev[1] then
  if prev[1] == A.fingerprint then return {'replay', 'otpId', prev[2]} end
  return {'conflict'}
end
redis.call('HSET', K.record, 'fp', A.fingerprint, 'id', A.otpId)
redis.call('PEXPIRE', K.record, A.ttlMs)
return {'claimed'}
`,
});

/**
 * How long an Idempotency-Key is remembered: a day, but never longer than the OTP record it names (its lifetime and
 * the record retention), or a retry after the record is gone would create that OTP again with another code.
 */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;

export type ClaimOutcome = { kind: 'claimed' } | { kind: 'replay'; otpId: string } | { kind: 'conflict' };

export interface IdempotencyStore {
  /** `recordMs`: how long the OTP record lives (OTP lifetime + retention); the claim lives no longer. */
  claim(
    keyName: string,
    idempotencyKey: string,
    fingerprint: string,
    otpId: string,
    recordMs: number,
  ): Promise<ClaimOutcome>;
}

export function createIdempotencyStore(redis: RedisClient, ks: Keyspace): IdempotencyStore {
  return {
    async claim(keyName, idempotencyKey, fingerprint, otpId, recordMs) {
      const digest = createHash('sha256').update(idempotencyKey).digest('base64url').slice(0, 22);
      const record = ks.key(bucketTag('i', `${keyName}:${digest}`), `${keyName}:${digest}`);
      const r = await CLAIM.run(
        redis,
        { record },
        { fingerprint, otpId, ttlMs: Math.min(IDEMPOTENCY_TTL_MS, recordMs) },
      );
      if (r.outcome === 'replay') return { kind: 'replay', otpId: String(r.otpId) };
      return r.outcome === 'conflict' ? { kind: 'conflict' } : { kind: 'claimed' };
    },
  };
}
