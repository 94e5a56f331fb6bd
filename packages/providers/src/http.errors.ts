import { ProviderError, type ProviderId } from '@otp-gateway/core';

/** Reads a Retry-After header (seconds, or an HTTP date) into milliseconds; undefined when absent or unreadable. */
export function parseRetryAfter(value: unknown, now = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (typeof raw === 'number' && Number.isFinite(raw)) return Math.max(0, raw * 1000);
  if (typeof raw !== 'string' || raw.trim() === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(raw.trim())) return Math.round(Number(raw) * 1000);
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** One send's signals: the caller's, and the signal of the HTTP call, which the caller's or the deadline aborts. */
export interface SendSignals {
  readonly caller: AbortSignal;
  readonly combined: AbortSignal;
  /** The send's own deadline (not the caller) aborted it. */
  readonly timedOut: boolean;
  readonly timeoutMs: number;
  /** The send is over, however it ended: its deadline is cleared and the caller's signal lets go of it. */
  done(): void;
}

/**
 * The sends in flight under each caller's signal (a worker's one shutdown signal, for all its sends): one listener
 * per caller aborts them all. A listener per send would add up to the worker's concurrency on one signal.
 */
const inFlight = new WeakMap<AbortSignal, Set<AbortController>>();

function sendsUnder(caller: AbortSignal): Set<AbortController> {
  let sends = inFlight.get(caller);
  if (!sends) {
    const all = new Set<AbortController>();
    inFlight.set(caller, all);
    caller.addEventListener('abort', () => {
      for (const c of all) c.abort(caller.reason);
      all.clear();
    });
    sends = all;
  }
  return sends;
}

/**
 * Bounds one send by `timeoutMs` as well as by the caller's signal; the provider calls `done()` when the send ends.
 *
 * Why not `AbortSignal.any([caller, AbortSignal.timeout(ms)])`: the timeout's timer cannot be cleared, so each
 * send left one running for the whole PROVIDER_TIMEOUT_MS (some 12,000 at a time at 2,400 sends a second, with a
 * timeout of 5 s), and `any` tracks its sources with weak references. In the worker's profile over HTTP the two
 * took about 4 % of its CPU; this function, a plain timer cleared at the end and one controller, takes 2 %.
 */
export function sendSignals(caller: AbortSignal, timeoutMs: number): SendSignals {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError'));
  }, timeoutMs);
  // as AbortSignal.timeout's: the HTTP call in flight keeps the process up, not its deadline
  timer.unref();
  const sends = sendsUnder(caller);
  if (caller.aborted) controller.abort(caller.reason);
  else sends.add(controller);
  return {
    caller,
    combined: controller.signal,
    get timedOut() {
      return timedOut;
    },
    timeoutMs,
    done() {
      clearTimeout(timer);
      sends.delete(controller);
    },
  };
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
  if (s.timedOut || code === 'ECONNABORTED' || code === 'ETIMEDOUT') {
    return new ProviderError(`${provider} did not answer within ${s.timeoutMs} ms`, 'retryable', 'TIMEOUT');
  }
  const name = typeof code === 'string' && code ? code : 'NETWORK';
  return new ProviderError(`${provider} unreachable (${name})`, 'retryable', name);
}
