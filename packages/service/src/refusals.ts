import { GatewayError } from '@otp-gateway/core';
import { type Limited, reportStoreError } from '@otp-gateway/store';

// How the use cases refuse: the contract's error codes, and the bound on every step that goes to Redis.

/** Redis work is bounded: an unreachable store answers 503 within about a second, never hangs a request. */
const STORE_DEADLINE_MS = 800;

/** Runs one step against the store; a failure or a step past the deadline is 503 store_unavailable. */
export async function store<T>(work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('store deadline exceeded')), STORE_DEADLINE_MS);
      }),
    ]);
  } catch (err) {
    // the cause is logged (rate-limited) and counted by the process's sink; the answer says only 503
    reportStoreError('request', err);
    throw new GatewayError(503, 'store_unavailable', 'the OTP store is unreachable; try again shortly', undefined, 1);
  } finally {
    clearTimeout(timer);
  }
}

const LIMIT_ERRORS: Record<Limited['scope'], [string, string]> = {
  ip: ['rate_limited', 'too many requests from this client address'],
  key: ['rate_limited', 'too many requests for this API key'],
  cooldown: ['resend_cooldown', 'a code was sent to this number moments ago; wait before asking again'],
  number_window: ['too_many_sends', 'too many codes were sent to this number; wait before asking again'],
  number_locked: ['number_locked', 'too many wrong codes for this number; it is locked for a while'],
};

export function refuse(l: Limited): never {
  const [code, message] = LIMIT_ERRORS[l.scope];
  throw new GatewayError(429, code, message, undefined, Math.ceil(l.retryAfterMs / 1000));
}

const GUARD_MESSAGES: Record<string, string> = {
  prefix_velocity: 'too many codes to this number range (or country) were never verified; sends there are paused',
  low_conversion: 'too few codes sent there are verified; sends there are throttled',
  country_budget_exhausted: "the daily SMS budget of this number's country is spent; it resets at 00:00 UTC",
  key_budget_exhausted: "this API key's daily SMS budget is spent; it resets at 00:00 UTC",
};

/** 429 of an abuse guard: the guard (its code), what it saw, and when to try again. */
export function guardError(code: string, why: string, retryAfterMs: number): GatewayError {
  const message = `${code}: ${GUARD_MESSAGES[code] ?? 'refused by an abuse guard'}${why ? ` (${why})` : ''}`;
  return new GatewayError(429, code, message, undefined, Math.max(1, Math.ceil(retryAfterMs / 1000)));
}

export const notFound = () => new GatewayError(404, 'otp_not_found', 'no such OTP for this API key');

export function endedError(id: string, status: string, replacedBy: string | null): GatewayError {
  const details = { id, status, attemptsRemaining: 0 };
  switch (status) {
    case 'approved':
      return new GatewayError(409, 'already_approved', 'this code was already used', details);
    case 'locked':
      return new GatewayError(423, 'otp_locked', 'too many wrong codes; ask for a new one', details);
    case 'failed':
      return new GatewayError(410, 'otp_failed', 'the code could not be delivered; ask for a new one', details);
    default:
      return replacedBy
        ? new GatewayError(410, 'otp_replaced', 'a newer code was sent to this number; use that one', details)
        : new GatewayError(410, 'otp_expired', 'the code has expired; ask for a new one', details);
  }
}
