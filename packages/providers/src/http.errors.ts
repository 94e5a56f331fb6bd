import { ProviderError, type ProviderId } from '@otp-gateway/core';

/** Wait used for a 429 that says nothing about how long to wait. */
export const DEFAULT_RETRY_AFTER_MS = 1000;

/** Reads a Retry-After header (seconds, or an HTTP date) into milliseconds; undefined when absent or unreadable. */
export function parseRetryAfter(value: unknown, now = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (typeof raw === 'number' && Number.isFinite(raw)) return Math.max(0, raw * 1000);
  if (typeof raw !== 'string' || raw.trim() === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(raw.trim())) return Math.round(Number(raw) * 1000);
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** One send's signals: the caller's, the send's own deadline, and both together for the HTTP call. */
export interface SendSignals {
  readonly caller: AbortSignal;
  readonly deadline: AbortSignal;
  readonly combined: AbortSignal;
  readonly timeoutMs: number;
}

/** Bounds one send by `timeoutMs` as well as by the caller's signal. */
export function sendSignals(caller: AbortSignal, timeoutMs: number): SendSignals {
  const deadline = AbortSignal.timeout(timeoutMs);
  return { caller, deadline, combined: AbortSignal.any([caller, deadline]), timeoutMs };
}

/** The caller gave up (shutdown, job cancelled): the message may or may not have left. */
export function abortedError(provider: ProviderId): ProviderError {
  return new ProviderError(`${provider} send aborted`, 'retryable', 'ABORTED');
}

/**
 * Classifies a failure that brought no HTTP answer: the caller's abort, our deadline, or the network
 * (refused, reset, DNS...). All are worth another try.
 */
export function transportError(provider: ProviderId, err: unknown, s: SendSignals): ProviderError {
  if (s.caller.aborted) return abortedError(provider);
  const code = (err as { code?: unknown })?.code;
  if (s.deadline.aborted || code === 'ECONNABORTED' || code === 'ETIMEDOUT') {
    return new ProviderError(`${provider} did not answer within ${s.timeoutMs} ms`, 'retryable', 'TIMEOUT');
  }
  const name = typeof code === 'string' && code ? code : 'NETWORK';
  return new ProviderError(`${provider} unreachable (${name})`, 'retryable', name);
}
