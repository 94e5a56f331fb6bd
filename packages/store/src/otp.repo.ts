import type { OtpStatus, OtpView } from '@otp-gateway/core';
import type { Redis } from 'ioredis';
import { IDEMPOTENCY_TTL_MS, keys, PREFIX, RETENTION_MS } from './keys.js';
import { READ_LUA, SEND_LUA, VERIFY_LUA } from './otp.scripts.js';
import { toView } from './otp.view.js';
import type { RedisClock } from './redis-clock.js';

/** Request rate limits applied inside the scripts. */
export interface RateLimits {
  readonly ipPerMinute: number;
  readonly keyPerMinute: number;
  readonly numberMaxFailures: number;
  readonly numberLockMs: number;
  readonly cooldownMs: number;
  readonly maxSendsPerNumber: number;
  readonly sendWindowMs: number;
}

/** Why a request was refused with 429. */
export type LimitScope = 'ip' | 'key' | 'number_locked' | 'cooldown' | 'number_window';

export interface Limited {
  readonly kind: 'limited';
  readonly scope: LimitScope;
  readonly retryAfterMs: number;
}

export interface CreateOtpInput {
  readonly id: string;
  readonly keyName: string;
  readonly ip: string;
  readonly phone: string;
  readonly codeHash: string;
  /** The code sealed with AES-256-GCM (as in the job), kept so a resend through another provider can send it. */
  readonly sealedCode: string;
  readonly expiresAt: number;
  readonly maxAttempts: number;
  readonly callingCode: string;
  readonly locale: string;
  /** Keyed fingerprint of the request when an Idempotency-Key was sent. */
  readonly idempotency: { readonly key: string; readonly fingerprint: string } | null;
  /** The answer to store for idempotent replays. */
  readonly response: string;
  readonly now: number;
}

export type CreateOutcome = { kind: 'created' } | { kind: 'replay'; response: string } | { kind: 'conflict' } | Limited;

export type VerifyTarget = { by: 'id'; id: string } | { by: 'phone'; phone: string };

/** What metrics may know of an OTP: its number's country calling code and the provider that sent it ('' if none). */
export interface OtpLabels {
  readonly callingCode: string;
  readonly provider: string;
}

export type VerifyOutcome =
  | ({ kind: 'approved'; id: string } & OtpLabels)
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
  | Limited;

export type ReadOutcome = { kind: 'found'; otp: OtpView & { keyName: string } } | { kind: 'not_found' } | Limited;

interface ScriptRedis extends Redis {
  otpSend(...args: (string | number)[]): Promise<unknown[]>;
  otpVerify(...args: (string | number)[]): Promise<unknown[]>;
  otpRead(...args: (string | number)[]): Promise<unknown[]>;
}

/** OTP state in Redis: creation, atomic verification, reads. Every method is one round trip but verify-by-phone (two). */
export interface OtpRepo {
  create(input: CreateOtpInput): Promise<CreateOutcome>;
  verify(
    target: VerifyTarget,
    keyName: string,
    ip: string,
    candidateHash: (id: string) => string,
    now: number,
  ): Promise<VerifyOutcome>;
  read(target: VerifyTarget, keyName: string, ip: string, now: number): Promise<ReadOutcome>;
}

const minute = (now: number) => Math.floor(now / 60000);
const limited = (r: unknown[]): Limited => ({
  kind: 'limited',
  scope: r[1] as LimitScope,
  retryAfterMs: Math.max(1, Number(r[2])),
});

/** Thrown when a script ran past its deadline and changed nothing (the caller already gave up on it). */
export class LateError extends Error {
  override readonly name = 'LateError';
}

/**
 * Builds the OTP repository on a connection (registers its scripts on it). With a clock, every script carries a
 * deadline `deadlineMs` from its call: run later than that (Redis hung, then woke up), it changes nothing.
 * Keep it below the connection's command timeout (700 ms), after which the caller has answered 503.
 */
export function createOtpRepo(
  redis: Redis,
  limits: RateLimits,
  opts: { clock?: RedisClock; deadlineMs?: number } = {},
): OtpRepo {
  const deadline = () => opts.clock?.deadline(opts.deadlineMs ?? 500) ?? 0;
  const checked = (res: unknown[]) => {
    if (res[0] === 'late') throw new LateError('script ran past its deadline');
    return res;
  };
  const r = redis as ScriptRedis;
  if (typeof r.otpSend !== 'function') {
    r.defineCommand('otpSend', { numberOfKeys: 9, lua: SEND_LUA });
    r.defineCommand('otpVerify', { numberOfKeys: 4, lua: VERIFY_LUA });
    r.defineCommand('otpRead', { numberOfKeys: 3, lua: READ_LUA });
  }

  const repo: OtpRepo = {
    async create(i) {
      const res = await r
        .otpSend(
          keys.ipRate(i.ip, minute(i.now)),
          keys.keyRate(i.keyName, minute(i.now)),
          i.idempotency ? keys.idempotency(i.keyName, i.idempotency.key) : keys.idempotency(i.keyName, '-'),
          keys.numberFailures(i.keyName, i.phone),
          keys.cooldown(i.keyName, i.phone),
          keys.sendWindow(i.keyName, i.phone),
          keys.latest(i.keyName, i.phone),
          keys.otp(i.id),
          keys.unstarted(),
          i.now,
          limits.ipPerMinute,
          limits.keyPerMinute,
          i.idempotency?.fingerprint ?? '',
          limits.numberMaxFailures,
          limits.cooldownMs,
          limits.maxSendsPerNumber,
          limits.sendWindowMs,
          i.id,
          i.keyName,
          i.phone,
          i.codeHash,
          i.expiresAt,
          i.maxAttempts,
          i.callingCode,
          i.locale,
          RETENTION_MS,
          IDEMPOTENCY_TTL_MS,
          i.response,
          PREFIX,
          i.sealedCode,
          deadline(),
        )
        .then(checked);
      switch (res[0]) {
        case 'ok':
          return { kind: 'created' };
        case 'replay':
          return { kind: 'replay', response: String(res[1]) };
        case 'conflict':
          return { kind: 'conflict' };
        default:
          return limited(res);
      }
    },

    async verify(target, keyName, ip, candidateHash, now) {
      // By phone the id is needed first: the code's HMAC is bound to it. The script re-checks that the
      // number's newest OTP is still that one; a resend in between is answered as a retry.
      for (let round = 0; round < 3; round++) {
        let id: string;
        if (target.by === 'id') id = target.id;
        else {
          const latest = await r.get(keys.latest(keyName, target.phone));
          if (!latest) {
            // Count the request like any other (the read script applies the per-IP and per-key limits).
            const counted = await repo.read(target, keyName, ip, now);
            if (counted.kind === 'found') continue;
            return counted.kind === 'limited' ? counted : { kind: 'not_found' };
          }
          id = latest;
        }
        const res = await r
          .otpVerify(
            keys.ipRate(ip, minute(now)),
            keys.keyRate(keyName, minute(now)),
            keys.otp(id),
            target.by === 'phone' ? keys.latest(keyName, target.phone) : keys.otp(id),
            now,
            limits.ipPerMinute,
            limits.keyPerMinute,
            limits.numberMaxFailures,
            limits.numberLockMs,
            keyName,
            candidateHash(id),
            target.by,
            id,
            PREFIX,
            deadline(),
          )
          .then(checked);
        switch (res[0]) {
          case 'stale':
            continue;
          case 'ok':
            return { kind: 'approved', id, callingCode: String(res[1] ?? ''), provider: String(res[2] ?? '') };
          case 'not_found':
            return { kind: 'not_found' };
          case 'limited':
            return limited(res);
          case 'wrong':
            return {
              kind: 'wrong',
              id,
              status: res[1] as 'pending' | 'locked',
              attemptsRemaining: Number(res[2]),
              callingCode: String(res[3] ?? ''),
              provider: String(res[4] ?? ''),
            };
          default:
            return {
              kind: 'ended',
              id,
              status: res[0] as Exclude<OtpStatus, 'pending'>,
              replacedBy: res[1] ? String(res[1]) : null,
              callingCode: String(res[2] ?? ''),
              provider: String(res[3] ?? ''),
              justExpired: res[4] === '1',
            };
        }
      }
      return { kind: 'not_found' };
    },

    async read(target, keyName, ip, now) {
      const res = await r
        .otpRead(
          keys.ipRate(ip, minute(now)),
          keys.keyRate(keyName, minute(now)),
          target.by === 'id' ? keys.otp(target.id) : keys.latest(keyName, target.phone),
          limits.ipPerMinute,
          limits.keyPerMinute,
          target.by,
          keyName,
          PREFIX,
          deadline(),
        )
        .then(checked);
      if (res[0] === 'limited') return limited(res);
      if (res[0] !== 'ok') return { kind: 'not_found' };
      const fields: Record<string, string> = {};
      for (let i = 1; i < res.length; i += 2) fields[String(res[i])] = String(res[i + 1]);
      return { kind: 'found', otp: toView(fields, now) };
    },
  };
  return repo;
}

/** The repository's limits from the gateway's OTP settings. */
export function limitsFromConfig(o: import('@otp-gateway/core').Config['otp']): RateLimits {
  return {
    ipPerMinute: o.ipRequestsPerMinute,
    keyPerMinute: o.keyRequestsPerMinute,
    numberMaxFailures: o.numberMaxFailures,
    numberLockMs: o.numberLockSeconds * 1000,
    cooldownMs: o.resendCooldownSeconds * 1000,
    maxSendsPerNumber: o.maxSendsPerNumber,
    sendWindowMs: o.sendWindowSeconds * 1000,
  };
}
