import { OtpGatewayError } from './errors.js';
import type { FetchInit, FetchLike } from './types.js';

/** One HTTP exchange with the gateway, read whole. */
export interface Answer {
  readonly status: number;
  /** The parsed JSON body, or undefined when the body is not JSON. */
  readonly body: unknown;
  /** `Retry-After` in whole seconds, when the answer has a valid one. */
  readonly retryAfterSeconds: number | undefined;
}

/** The gateway's error body: `{"error": {"code", "message"}, ...details}`. */
export interface ApiErrorBody {
  readonly error: { readonly code: string; readonly message: string };
  readonly id?: unknown;
  readonly status?: unknown;
  readonly attemptsRemaining?: unknown;
}

/**
 * Sends one request and reads its whole answer within `timeoutMs`. Throws only `OtpGatewayError`:
 * `timeout`, or `network_error` for anything else that prevents an answer. `what` names the call in messages
 * (method and route only: never a phone number or a body).
 */
export async function exchange(
  fetchFn: FetchLike,
  url: string,
  init: Omit<FetchInit, 'signal'>,
  timeoutMs: number,
  what: string,
): Promise<Answer> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = () => new OtpGatewayError({ code: 'timeout', message: `${what}: no answer within ${timeoutMs} ms` });
  // Raced against the call and the body read, so the deadline holds even for a fetch that ignores its signal.
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(timedOut());
    }, timeoutMs);
  });
  try {
    const res = await Promise.race([fetchFn(url, { ...init, signal: controller.signal }), deadline]);
    const text = await Promise.race([res.text(), deadline]);
    return {
      status: res.status,
      body: parseJson(text),
      retryAfterSeconds: parseRetryAfter(res.headers.get('retry-after')),
    };
  } catch (e) {
    if (e instanceof OtpGatewayError) throw e;
    if (controller.signal.aborted) throw timedOut();
    throw new OtpGatewayError({
      code: 'network_error',
      message: `${what}: the gateway could not be reached`,
      cause: e,
    });
  } finally {
    clearTimeout(timer);
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `Retry-After` as whole seconds (delta-seconds or an HTTP date), or undefined when absent or invalid. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  // An HTTP date names its day and month (V8's Date.parse would take "-5" for a year).
  const at = /^[a-z]{3}, /i.test(v) ? Date.parse(v) : Number.NaN;
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/** The gateway's error body in `body`, or undefined when it is something else. */
export function apiError(body: unknown): ApiErrorBody | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const error = (body as { error?: unknown }).error;
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code !== 'string') return undefined;
  return { ...(body as object), error: { code, message: typeof message === 'string' ? message : code } };
}

/** The error for an answer that is not the expected success. */
export function errorOf(answer: Answer, what: string): OtpGatewayError {
  const e = apiError(answer.body);
  return new OtpGatewayError({
    status: answer.status,
    code: e ? e.error.code : 'unexpected_response',
    message: e ? e.error.message : `${what}: unexpected answer (HTTP ${answer.status})`,
    retryAfterSeconds: answer.retryAfterSeconds,
  });
}

/**
 * The body of a 2xx JSON object answer that `expected` recognises (its status and the fields the caller relies
 * on); throws the answer's error otherwise. A 2xx that is not the gateway's answer (a wrong `baseUrl`: another
 * service, a proxy's default page, a stub) is `unexpected_response`, never taken for a success.
 */
export function successBody<T>(
  answer: Answer,
  what: string,
  expected: (status: number, body: Readonly<Record<string, unknown>>) => boolean,
): T {
  if (answer.status >= 200 && answer.status < 300) {
    const body = answer.body;
    if (typeof body === 'object' && body !== null && expected(answer.status, body as Record<string, unknown>)) {
      return body as T;
    }
    throw new OtpGatewayError({
      status: answer.status,
      code: 'unexpected_response',
      message: `${what}: the answer is not the gateway's (HTTP ${answer.status})`,
    });
  }
  throw errorOf(answer, what);
}
