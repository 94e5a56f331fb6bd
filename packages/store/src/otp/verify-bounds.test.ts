import { deriveKeys, encryptCode, hashCode, newOtpId, numberToken } from '@otp-gateway/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from '../../../../test/support/redis.js';
import type { StatusEvents } from '../events/status-events.js';
import { type RedisClock, startRedisClock } from '../redis/clock.js';
import { masters } from '../redis/connection.js';
import { DUE, NUMBER_FIELDS, numberKey, OTP_FIELDS, otpKeys } from './otp.record.js';
import { createOtpRepo, LateError } from './otp.repo.js';
import { CREATE, VERIFY } from './otp.scripts.js';

/**
 * A verify answers within the bound the API puts on each store step (800 ms, then 503 and nothing changed): what
 * comes after the verdict (its status event) cannot push the answer past it, and a verify whose script runs past
 * its deadline changes nothing.
 */
const keys = deriveKeys('verify-bounds-test-secret-0123456789abcdefghij');
const rules = { maxFailures: 10, lockMs: 60_000, cooldownMs: 0, maxSends: 100, windowMs: 3_600_000 };
/** The API's bound on one store step (packages/service refusals.ts). */
const STEP_BOUND_MS = 800;

let store: IsolatedStore;
let clock: RedisClock;
let n = 0;

beforeEach(async () => {
  store = await isolatedRedis();
  clock = startRedisClock(store.redis);
  while (clock.deadline(0) === 0) await new Promise((r) => setTimeout(r, 10));
  // the scripts known to every node beforehand: a first EVALSHA answered NOSCRIPT would be sent again after the
  // stall below, and be late in its first round
  for (const node of masters(store.redis)) for (const s of [CREATE, VERIFY]) await node.script('LOAD', s.source);
});
afterEach(async () => {
  clock.stop();
  await closeRedisClients(store.redis);
});

const freshPhone = () => `+336${String(20_000_000 + ++n)}`;

async function create(repo: ReturnType<typeof createOtpRepo>, phone: string, code: string, events: boolean) {
  const id = newOtpId(numberToken(keys, 'shop', phone));
  const r = await repo.create({
    id,
    keyName: 'shop',
    phoneNumber: phone,
    codeHash: hashCode(keys, id, code),
    sealedCode: encryptCode(keys, id, code),
    ttlMs: 300_000,
    maxAttempts: 3,
    callingCode: '33',
    country: 'FR',
    locale: 'fr',
    events,
  });
  if (r.kind !== 'created') throw new Error(r.kind);
  return id;
}

/** Blocks this thread (a process stalled, a Redis answering late) for `ms`. */
const stall = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

describe('verify within the API step bound', () => {
  it('an approval whose status event cannot be queued (events queue hung) is still answered approved in time', async () => {
    const hung: StatusEvents = {
      publish: () => new Promise(() => {}),
      publishMember: () => new Promise(() => {}),
    };
    const repo = createOtpRepo(store.redis, store.ks, { rules, retentionMs: 60_000 }, { clock, events: hung });
    const id = await create(repo, freshPhone(), '123456', true);
    const bound = new Promise<'bound passed'>((r) => setTimeout(() => r('bound passed'), STEP_BOUND_MS).unref());
    const r = await Promise.race([repo.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, '123456')), bound]);
    expect(r).toMatchObject({ kind: 'approved', id });
    // the event stays listed: the sweep publishes it after its grace
    expect(await store.redis.zrange(otpKeys(store.ks, id).due, 0, -1)).toContain(`${DUE.event}approved:${id}:0`);
  });

  it('a verify by phone number that found the OTP replaced, then ran past its deadline, changes nothing', async () => {
    const repo = createOtpRepo(store.redis, store.ks, { rules, retentionMs: 60_000 }, { clock, deadlineMs: 300 });
    const phone = freshPhone();
    const first = await create(repo, phone, '111111', false);
    const second = await create(repo, phone, '222222', false);
    const token = numberToken(keys, 'shop', phone);
    // the number points at the first OTP when the lookup runs; a resend moves it to the second before the verify
    // script runs (same connection, in order): that round answers stale. Once its script is written, this process
    // stalls past the deadline; the next round's script must then change nothing
    await store.redis.hset(numberKey(store.ks, token), NUMBER_FIELDS.current, first);
    let round = 0;
    const verifying = repo.verify({ by: 'phone', token }, 'shop', (i) => {
      if (round++ === 0) {
        void store.redis.hset(numberKey(store.ks, token), NUMBER_FIELDS.current, second);
        queueMicrotask(() => stall(400));
      }
      return hashCode(keys, i, '222222');
    });
    await expect(verifying).rejects.toBeInstanceOf(LateError);
    expect(round).toBe(2);
    // the second OTP is still pending with no attempt used: the caller, answered 503, may try again
    const [status, left] = await store.redis.hmget(otpKeys(store.ks, second).otp, OTP_FIELDS.status, OTP_FIELDS.left);
    expect({ status, left }).toEqual({ status: 'pending', left: '3' });
  });
});
