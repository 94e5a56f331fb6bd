import { isProviderError } from '@otp-gateway/core';

/** Upper bound of one wait between attempts. */
const MAX_DELAY_MS = 30_000;

/**
 * BullMQ backoff strategy. The processor computes the delay itself (so it can give up at once when the
 * retry would come too late) and attaches it to the error as `retryDelayMs`; this returns it.
 * Without one: `otp`: exponential with full jitter on retryable failures. When the provider
 * refused us (misconfigured) or asked us to slow down (rate limited), the next attempt goes to another
 * provider at once (the refused one is skipped by the begin script), so the wait is short.
 */
export function otpBackoff(attemptsMade: number, _type?: string, err?: Error): number {
  const chosen = (err as { retryDelayMs?: unknown } | undefined)?.retryDelayMs;
  if (typeof chosen === 'number') return chosen;
  const jitter = 0.5 + Math.random() * 0.5;
  if (isProviderError(err) && (err.kind === 'misconfigured' || err.kind === 'rate_limited')) {
    return Math.round(50 + 150 * jitter);
  }
  const base = Math.min(MAX_DELAY_MS, 500 * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(base * jitter);
}
