import type { OtpStatus, OtpView } from '@otp-gateway/core';
import { publishQuietly, type StatusEvents } from '../events/status-events.js';
import type { Keyspace } from '../keyspace.js';
import type { RedisClock } from '../redis/clock.js';
import type { RedisClient } from '../redis/connection.js';
import type { ScriptResult } from '../redis/script.js';
import { NUMBER_FIELDS, numberKey, OTP_FIELDS, otpKeys, SWEEP_GRACE_MS } from './otp.record.js';
import { CREATE, READ, VERIFY } from './otp.scripts.js';
import { toView } from './otp.view.js';
import type { Limited } from './request-limits.js';

/** The per-number rules applied when an OTP is created or checked. */
export interface NumberRules {
  readonly maxFailures: number;
  readonly lockMs: number;
  readonly cooldownMs: number;
  readonly maxSends: number;
  readonly windowMs: number;
}

export interface CreateOtpInput {
  readonly id: string;
  readonly keyName: string;
  readonly phoneNumber: string;
  readonly codeHash: string;
  /** The code sealed with AES-256-GCM, bound to the id: what the workers send. */
  readonly sealedCode: string;
  readonly ttlMs: number;
  readonly maxAttempts: number;
  readonly callingCode: string;
  /** ISO country of the number (its route, its guards). */
  readonly country: string;
  readonly locale: string;
  /** Correlation metadata, encoded (core's encodeMetadata; '' when none). */
  readonly metadata?: string;
  /** Status events wanted for this OTP (a webhook endpoint is configured for its key). */
  readonly events?: boolean;
  /** A test number's simulated outcome: the workers never send it to a provider. */
  readonly testOutcome?: string | null;
  /** How many digits the code has: a verify checks a code's length against it. */
  readonly codeLength?: number;
}

export type CreateOutcome =
  | { kind: 'created'; expiresAt: number }
  /** An OTP with this id exists already (a retried Idempotency-Key). */
  | { kind: 'exists' }
  | Limited;

/** An OTP by its id, or the current OTP of a number (by its number token). */
export type OtpTarget = { by: 'id'; id: string } | { by: 'phone'; token: string };

/** What metrics may know of an OTP: its number's country calling code and the provider that sent it ('' if none). */
export interface OtpLabels {
  readonly callingCode: string;
  readonly provider: string;
}

export type VerifyOutcome =
  /**
   * With the number and its ISO country ('' on older records): the abuse guards count the approval, unless it is a
   * test number's (`test`: its code was never sent, so it says nothing of the range's traffic).
   */
  | ({ kind: 'approved'; id: string; phoneNumber: string; country: string; test: boolean } & OtpLabels)
  | ({ kind: 'wrong'; id: string; status: 'pending' | 'locked'; attemptsRemaining: number } & OtpLabels)
  | ({
      kind: 'ended';
      id: string;
      status: Exclude<OtpStatus, 'pending'>;
      replacedBy: string | null;
      /** True when this verify is the one that found the OTP expired. */
      justExpired: boolean;
    } & OtpLabels)
  | { kind: 'not_found' }
  /** The code has another length than the OTP's (`codeLength` digits): nothing was counted. */
  | { kind: 'bad_format'; codeLength: number }
  | Limited;

export type ReadOutcome = { kind: 'found'; otp: OtpView & { keyName: string } } | { kind: 'not_found' };

/** OTP state: creation, atomic verification, reads. One round trip each; by phone number one more (the lookup). */
export interface OtpRepo {
  create(input: CreateOtpInput, now?: number): Promise<CreateOutcome>;
  /**
   * `length`: the code's length and the key's code length now, checked against the OTP's own (the key's current
   * one for records without it); absent: not checked.
   */
  verify(
    target: OtpTarget,
    keyName: string,
    candidateHash: (id: string) => string,
    now?: number,
    length?: { readonly given: number; readonly keyLength: number },
  ): Promise<VerifyOutcome>;
  read(target: OtpTarget, keyName: string, now?: number): Promise<ReadOutcome>;
  /** How many digits the code of an OTP of `keyName` has; null when unknown (no such OTP, or an older record). */
  codeLength(target: OtpTarget, keyName: string): Promise<number | null>;
}

/** Thrown when a script ran past its deadline and changed nothing (the caller already gave up on it). */
export class LateError extends Error {
  override readonly name = 'LateError';
}

const checked = (r: ScriptResult) => {
  if (r.outcome === 'late') throw new LateError('script ran past its deadline');
  return r;
};
const limited = (r: ScriptResult): Limited => ({
  kind: 'limited',
  scope: r.scope as Limited['scope'],
  retryAfterMs: Math.max(1, Number(r.ms)),
});

/** How long a verify waits for its status event to be queued before it answers. */
const PUBLISH_WAIT_MS = 150;

/** Waits for `work` at most `ms` (it goes on alone after that; it must not reject). */
function withinMs(ms: number, work: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<void>((done) => {
      timer = setTimeout(done, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Builds the OTP repository. With a clock, every script carries a deadline `deadlineMs` from its call: run later
 * than that (Redis hung, then woke up), it changes nothing. Keep it below the connection's command timeout (700 ms),
 * after which the caller has answered 503. `now` (tests only) replaces the Redis node's clock.
 */
export function createOtpRepo(
  redis: RedisClient,
  ks: Keyspace,
  settings: { rules: NumberRules; retentionMs: number },
  opts: {
    clock?: RedisClock;
    deadlineMs?: number;
    /** Publishes the status events a verify lists (approved, locked); the sweep covers a failed publish. */
    events?: StatusEvents;
    onEventError?: (err: unknown) => void;
  } = {},
): OtpRepo {
  const { rules } = settings;
  const deadline = () => opts.clock?.deadline(opts.deadlineMs ?? 500) ?? 0;
  // By phone number, the id comes first: the code's HMAC is bound to it, and the scripts check the number still
  // points at it (a resend in between answers `stale`, and the lookup is done again).
  // The event of a verify (approved, locked) is queued before the answer when the events queue answers in time; a
  // slow one must not turn an approval into a 503 (the caller's bound on the whole step): the sweep publishes an
  // event still listed after its grace.
  const publishBriefly = (id: string, name: 'approved' | 'locked') =>
    withinMs(PUBLISH_WAIT_MS, publishQuietly(opts.events, id, name, 0, opts.onEventError));
  const resolve = async (target: OtpTarget): Promise<string | null> =>
    target.by === 'id' ? target.id : redis.hget(numberKey(ks, target.token), NUMBER_FIELDS.current);

  return {
    async create(i, now = 0) {
      const r = checked(
        await CREATE.run(redis, otpKeys(ks, i.id), {
          now,
          deadline: deadline(),
          id: i.id,
          keyName: i.keyName,
          phone: i.phoneNumber,
          hash: i.codeHash,
          sealed: i.sealedCode,
          ttlMs: i.ttlMs,
          maxAttempts: i.maxAttempts,
          cc: i.callingCode,
          country: i.country,
          locale: i.locale,
          retentionMs: settings.retentionMs,
          maxFailures: rules.maxFailures,
          cooldownMs: rules.cooldownMs,
          maxSends: rules.maxSends,
          windowMs: rules.windowMs,
          sweepAfterMs: SWEEP_GRACE_MS,
          meta: i.metadata ?? '',
          events: i.events ? 1 : 0,
          test: i.testOutcome ?? '',
          codeLength: i.codeLength ?? '',
        }),
      );
      if (r.outcome === 'created') return { kind: 'created', expiresAt: Number(r.exp) };
      if (r.outcome === 'exists') return { kind: 'exists' };
      return limited(r);
    },

    async verify(target, keyName, candidateHash, now = 0, length) {
      // one deadline for the whole call: by phone number, a slow lookup or a round answered `stale` must not push
      // the script that changes something past the time the caller has answered 503
      const until = deadline();
      for (let round = 0; round < 3; round++) {
        const id = await resolve(target);
        if (!id) return { kind: 'not_found' };
        const r = checked(
          await VERIFY.run(redis, otpKeys(ks, id), {
            now,
            deadline: until,
            keyName,
            candidate: candidateHash(id),
            mode: target.by,
            id,
            maxFailures: rules.maxFailures,
            lockMs: rules.lockMs,
            length: length?.given ?? 0,
            keyLength: length?.keyLength ?? 0,
          }),
        );
        const labels = { callingCode: r.cc ?? '', provider: r.provider ?? '' };
        switch (r.outcome) {
          case 'stale':
            continue;
          case 'approved':
            if (r.listed === '1') await publishBriefly(id, 'approved');
            return {
              kind: 'approved',
              id,
              phoneNumber: r.phone ?? '',
              country: r.country ?? '',
              test: r.test === '1',
              ...labels,
            };
          case 'not_found':
            return { kind: 'not_found' };
          case 'bad_format':
            return { kind: 'bad_format', codeLength: Number(r.length) };
          case 'limited':
            return limited(r);
          case 'wrong':
            if (r.listed === '1') await publishBriefly(id, 'locked');
            return {
              kind: 'wrong',
              id,
              status: r.status as 'pending' | 'locked',
              attemptsRemaining: Number(r.left),
              ...labels,
            };
          default:
            return {
              kind: 'ended',
              id,
              status: r.status as Exclude<OtpStatus, 'pending'>,
              replacedBy: r.replacedBy || null,
              justExpired: r.justEnded === '1' && r.status === 'expired',
              ...labels,
            };
        }
      }
      return { kind: 'not_found' };
    },

    async codeLength(target, keyName) {
      const id = await resolve(target);
      if (!id) return null;
      const [key, length] = await redis.hmget(otpKeys(ks, id).otp, OTP_FIELDS.key, OTP_FIELDS.codeLength);
      return key === keyName && length ? Number(length) : null;
    },

    async read(target, keyName, now = 0) {
      for (let round = 0; round < 3; round++) {
        const id = await resolve(target);
        if (!id) return { kind: 'not_found' };
        const r = checked(
          await READ.run(redis, otpKeys(ks, id), { now, deadline: deadline(), keyName, mode: target.by, id }),
        );
        if (r.outcome === 'stale') continue;
        if (r.outcome !== 'found') return { kind: 'not_found' };
        const fields: Record<string, string> = {};
        for (const [k, v] of Object.entries(r)) if (k.startsWith('f.')) fields[k.slice(2)] = v ?? '';
        return { kind: 'found', otp: toView(id, fields, Number(r.now)) };
      }
      return { kind: 'not_found' };
    },
  };
}

/** The sealed code of a pending OTP (what the workers send), or null once it ended. For the workers and tests. */
export async function readSealedCode(redis: RedisClient, ks: Keyspace, otpId: string): Promise<string | null> {
  return redis.hget(otpKeys(ks, otpId).otp, OTP_FIELDS.sealed);
}
