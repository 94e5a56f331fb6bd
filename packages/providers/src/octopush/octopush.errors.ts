import { ProviderError, type ProviderErrorKind } from '@otp-gateway/core';
import { parseRetryAfter } from '../http.errors.js';

/**
 * Octopush error codes (its published return-code table) by what they make the worker do. Codes not
 * listed, on a 4xx, count as `misconfigured`: this provider refuses our request, the next may not.
 */
const KNOWN: ReadonlyMap<number, [ProviderErrorKind, string]> = new Map([
  [101, ['misconfigured', 'incorrect login details']],
  [108, ['misconfigured', 'api-login missing']],
  [109, ['misconfigured', 'api-key missing']],
  [104, ['misconfigured', 'out of credit']],
  [105, ['misconfigured', 'out of credit, order awaiting validation']],
  [106, ['misconfigured', 'invalid sender']],
  [112, ['misconfigured', 'invalid message type or purpose']],
  [113, ['misconfigured', 'account not validated']],
  [114, ['misconfigured', 'account under investigation']],
  [117, ['permanent', 'no valid recipient number']],
]);

/** Repeated `request_id`: Octopush already has this very message (see the provider). */
export const OCTOPUSH_DUPLICATE_REQUEST = 120;

/** An Octopush error body: `{"code": <int>, "message": "..."}`. */
export interface OctopushErrorBody {
  readonly code?: number | string | null;
}

/** Octopush codes travel as numbers or numeric strings. */
export function octopushCode(body: unknown): number | null {
  const code = (body as OctopushErrorBody | null)?.code;
  const n = typeof code === 'string' ? Number(code) : code;
  return typeof n === 'number' && Number.isInteger(n) ? n : null;
}

/**
 * What an Octopush error answer means: 429 rate_limited (with Retry-After), 5xx retryable, 401/403
 * misconfigured, known codes as listed, any other 4xx misconfigured.
 */
export function classifyOctopushResponse(status: number, body: unknown, retryAfter?: unknown): ProviderError {
  const code = octopushCode(body);
  const label = code === null ? `HTTP ${status}` : `${status}/${code}`;
  const id = String(code ?? status);
  if (status === 429) {
    // no Retry-After: the provider's circuit backs off (circuit.ts)
    const wait = parseRetryAfter(retryAfter);
    return new ProviderError(`octopush rate limited (${label})`, 'rate_limited', id, wait);
  }
  if (status >= 500) return new ProviderError(`octopush server error (${label})`, 'retryable', id);
  const known = code === null ? undefined : KNOWN.get(code);
  if (known) return new ProviderError(`octopush refused the message: ${known[1]} (${label})`, known[0], id);
  return new ProviderError(`octopush refused the message (${label})`, 'misconfigured', id);
}
