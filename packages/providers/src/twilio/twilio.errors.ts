import { ProviderError, type ProviderErrorKind } from '@otp-gateway/core';
import { parseRetryAfter, type SendSignals, transportError } from '../http.errors.js';

/**
 * Twilio REST error codes (twilio.com/docs/api/errors) by what they make the worker do. Our own words
 * describe each, so no phone number from Twilio's message reaches a log line.
 */
const KNOWN: ReadonlyMap<number, [ProviderErrorKind, string]> = new Map([
  // This account or sender cannot send here: another provider may.
  [20003, ['misconfigured', 'authentication failed']],
  [20005, ['misconfigured', 'account not active']],
  [20404, ['misconfigured', 'account or resource not found']],
  [21212, ['misconfigured', 'invalid From number']],
  [21603, ['misconfigured', 'From number missing']],
  [21606, ['misconfigured', 'From number cannot send this message']],
  [21659, ['misconfigured', 'From number is not a Twilio number']],
  [21408, ['misconfigured', 'sending to this region is not enabled']],
  [21612, ['misconfigured', 'this destination is not reachable from this sender']],
  [21624, ['misconfigured', 'invalid validity period']],
  [21701, ['misconfigured', 'messaging service not found']],
  [21705, ['misconfigured', 'invalid messaging service']],
  // The recipient cannot get an SMS from anyone.
  [21211, ['permanent', 'invalid To number']],
  [21614, ['permanent', 'To number is not a mobile number']],
  [21610, ['permanent', 'recipient has opted out (STOP)']],
  // Twilio is busy: later.
  [21611, ['retryable', 'From number queue is full']],
  [20429, ['rate_limited', 'too many requests']],
  [20500, ['retryable', 'Twilio internal error']],
  [20503, ['retryable', 'Twilio unavailable']],
]);

/** The fields of a Twilio error body the gateway reads: `{code, message, more_info, status}`. */
export interface TwilioErrorBody {
  readonly code?: number | null;
  readonly status?: number;
}

/**
 * What a Twilio error answer means: 429/20429 rate_limited (with Retry-After when it has one), 5xx retryable,
 * known codes as listed, any other 4xx misconfigured (this provider refuses; the next one may not).
 */
export function classifyTwilioResponse(
  status: number,
  body: TwilioErrorBody | null,
  retryAfter?: unknown,
): ProviderError {
  const code = typeof body?.code === 'number' ? body.code : null;
  const label = code === null ? `HTTP ${status}` : `${status}/${code}`;
  if (status === 429 || code === 20429) {
    // no Retry-After (20429 documents none): the provider's circuit backs off (circuit.ts)
    const wait = parseRetryAfter(retryAfter);
    return new ProviderError(`twilio rate limited (${label})`, 'rate_limited', String(code ?? status), wait);
  }
  const known = code === null ? undefined : KNOWN.get(code);
  if (status >= 500) return new ProviderError(`twilio server error (${label})`, 'retryable', String(code ?? status));
  if (known) return new ProviderError(`twilio refused the message: ${known[1]} (${label})`, known[0], String(code));
  return new ProviderError(`twilio refused the message (${label})`, 'misconfigured', String(code ?? status));
}

/** What the twilio library's RestException (or TwilioServiceException) carries. */
interface TwilioException {
  status: number;
  code?: number;
}
const isTwilioException = (e: unknown): e is TwilioException =>
  e instanceof Error && typeof (e as { status?: unknown }).status === 'number';

/**
 * Classifies whatever `messages.create` threw: an HTTP error answer (headers from the library's last
 * response, for Retry-After), an unreadable answer, or no answer at all.
 */
export function classifyTwilioFailure(
  err: unknown,
  signals: SendSignals,
  lastResponse?: { statusCode: number; headers?: Record<string, unknown> },
): ProviderError {
  if (isTwilioException(err)) {
    return classifyTwilioResponse(err.status, { code: err.code ?? null }, lastResponse?.headers?.['retry-after']);
  }
  if (err instanceof SyntaxError) {
    return new ProviderError('twilio answered something unreadable', 'retryable', 'BAD_RESPONSE');
  }
  return transportError('twilio', err, signals);
}
