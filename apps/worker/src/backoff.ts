import { isProviderError } from '@otp-gateway/core';

/** Upper bound of one wait between attempts. */
const MAX_DELAY_MS = 30_000;

/**
 * How long to wait before attempt `attempt + 1` after attempt `attempt` failed with `err`: exponential with jitter
 * on retryable failures. When the provider refused us (misconfigured) or asked us to slow down (rate limited), the
 * next attempt goes to another provider at once (the refused one is skipped by the plan), so the wait is short.
 */
export function otpBackoff(attempt: number, err?: Error): number {
  const jitter = 0.5 + Math.random() * 0.5;
  if (isProviderError(err) && (err.kind === 'misconfigured' || err.kind === 'rate_limited')) {
    return Math.round(50 + 150 * jitter);
  }
  const base = Math.min(MAX_DELAY_MS, 500 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * jitter);
}
