import type { ProviderErrorKind, ProviderId } from '@otp-gateway/core';
import type { Redis } from 'ioredis';
import { ACCEPT_LUA, BEGIN_LUA, FAIL_LUA, GIVE_UP_LUA, RECEIPT_TIMEOUT_LUA } from './delivery.scripts.js';
import { keys, MIN_RESEND_LIFE_MS, RETENTION_MS } from './keys.js';

/** Provider health settings, shared by every worker through Redis. */
export interface CircuitSettings {
  readonly failureThreshold: number;
  readonly cooldownMs: number;
  /** How long one provider call may take (its timeout and a margin): another job of the OTP waits that long. */
  readonly leaseMs: number;
}

export type BeginOutcome =
  | {
      kind: 'go';
      attempt: number;
      provider: ProviderId;
      /** The attempt whose request id to send (differs from `attempt` when it resumes an interrupted one). */
      requestAttempt: number;
    }
  /** No provider is free before `ms`. */
  | { kind: 'wait'; ms: number }
  /** Another job of this OTP is sending now; its outcome is known within `ms`. */
  | { kind: 'busy'; ms: number }
  | {
      kind: 'stop';
      reason: 'gone' | 'approved' | 'expired' | 'locked' | 'failed' | 'done' | 'too_late' | 'exhausted';
    };

/** The worker's view of an OTP's delivery: begin an attempt, settle it, give up. Each call is one round trip. */
export interface DeliveryRepo {
  begin(otpId: string, order: readonly ProviderId[], now: number, minLifeMs: number): Promise<BeginOutcome>;
  accepted(
    otpId: string,
    attempt: number,
    provider: ProviderId,
    messageId: string,
    providerStatus: string,
    now: number,
  ): Promise<string[]>;
  failed(
    otpId: string,
    attempt: number,
    provider: ProviderId,
    kind: ProviderErrorKind,
    errorCode: string,
    now: number,
    pauseMs?: number,
  ): Promise<'open' | 'closed'>;
  /** Ends a pending OTP that never went out as `failed` (true); one that went out once stays usable (false). */
  giveUp(otpId: string, now: number): Promise<boolean>;
  /**
   * No final receipt came for `attempt`: when it still counts and the OTP can still be used, marks it
   * `no_receipt` so the code may go out through another provider. True when it did.
   */
  receiptTimedOut(otpId: string, attempt: number, provider: ProviderId, now: number): Promise<boolean>;
  /** Each provider's shared health: circuit open (no sends until the cool-down), paused (after a 429). */
  circuits(providers: readonly ProviderId[], now: number): Promise<Record<string, { open: boolean; paused: boolean }>>;
}

interface ScriptRedis extends Redis {
  otpBegin(...args: (string | number)[]): Promise<unknown[]>;
  otpAccept(...args: (string | number)[]): Promise<string[]>;
  otpFail(...args: (string | number)[]): Promise<string>;
  otpGiveUp(...args: (string | number)[]): Promise<number>;
  otpReceiptTimeout(...args: (string | number)[]): Promise<number>;
}

const rateKey = (p: ProviderId, now: number) => `${keys.circuit(p)}:rate:${Math.floor(now / 1000)}`;

export function createDeliveryRepo(
  redis: Redis,
  circuit: CircuitSettings,
  ratePerSecond: Readonly<Record<ProviderId, number>>,
): DeliveryRepo {
  const r = redis as ScriptRedis;
  if (typeof r.otpBegin !== 'function') {
    r.defineCommand('otpBegin', { lua: BEGIN_LUA });
    r.defineCommand('otpAccept', { numberOfKeys: 4, lua: ACCEPT_LUA });
    r.defineCommand('otpFail', { numberOfKeys: 2, lua: FAIL_LUA });
    r.defineCommand('otpGiveUp', { numberOfKeys: 1, lua: GIVE_UP_LUA });
    r.defineCommand('otpReceiptTimeout', { numberOfKeys: 2, lua: RECEIPT_TIMEOUT_LUA });
  }
  return {
    async begin(otpId, order, now, minLifeMs) {
      const n = order.length;
      const res = await r.otpBegin(
        2 + 2 * n,
        keys.otp(otpId),
        ...order.map((p) => keys.circuit(p)),
        ...order.map((p) => rateKey(p, now)),
        keys.unstarted(),
        now,
        minLifeMs,
        n,
        ...order,
        ...order.map((p) => ratePerSecond[p] ?? 0),
        circuit.failureThreshold,
        circuit.cooldownMs,
        circuit.leaseMs,
        otpId,
      );
      if (res[0] === 'go') {
        return { kind: 'go', attempt: Number(res[1]), provider: res[2] as ProviderId, requestAttempt: Number(res[3]) };
      }
      if (res[0] === 'wait' || res[0] === 'busy') return { kind: res[0], ms: Math.max(1, Number(res[1])) };
      return { kind: 'stop', reason: res[1] as Extract<BeginOutcome, { kind: 'stop' }>['reason'] };
    },
    async accepted(otpId, attempt, provider, messageId, providerStatus, now) {
      return r.otpAccept(
        keys.otp(otpId),
        keys.message(provider, messageId),
        keys.circuit(provider),
        keys.earlyCallbacks(provider, messageId),
        now,
        attempt,
        provider,
        messageId,
        providerStatus,
        RETENTION_MS,
      );
    },
    async failed(otpId, attempt, provider, kind, errorCode, now, pauseMs = 1000) {
      const state = await r.otpFail(
        keys.otp(otpId),
        keys.circuit(provider),
        now,
        attempt,
        kind,
        errorCode,
        circuit.failureThreshold,
        circuit.cooldownMs,
        pauseMs,
      );
      return state === 'open' ? 'open' : 'closed';
    },
    async giveUp(otpId, now) {
      return (await r.otpGiveUp(keys.otp(otpId), now)) === 1;
    },
    async circuits(providers, now) {
      const rows = await Promise.all(providers.map((p) => r.hmget(keys.circuit(p), 'openUntil', 'pausedUntil')));
      return Object.fromEntries(
        providers.map((p, i) => [
          p,
          { open: Number(rows[i]?.[0] ?? 0) > now, paused: Number(rows[i]?.[1] ?? 0) > now },
        ]),
      );
    },
    async receiptTimedOut(otpId, attempt, provider, now) {
      return (
        (await r.otpReceiptTimeout(keys.otp(otpId), keys.circuit(provider), now, attempt, MIN_RESEND_LIFE_MS)) === 1
      );
    },
  };
}
