import { OTP_ID_PATTERN } from '@otp-gateway/core';

/** Attempt numbers a callback may name (the worker gives an OTP at most 40). */
const ATTEMPT = /^[1-9][0-9]{0,3}$/;

/**
 * The StatusCallback of one message. With `names` (TWILIO_CALLBACK_NAMES_ATTEMPT), the configured URL with the OTP
 * and the attempt the message counts as (`?otp=<id>&attempt=<n>`): Twilio calls it as given and signs it whole,
 * query included, so the callbacks app knows where a report belongs without looking the message sid up (the worker
 * records no message index entry for the send, and the callbacks app makes one Redis round trip a report instead
 * of two). `named` is false, and the URL as configured, without `names` or when attemptOfStatusCallback could not
 * read them back: that message is then indexed. Null: no StatusCallback configured.
 */
export function statusCallbackFor(
  url: string | null | undefined,
  names: { readonly otpId: string; readonly attempt: number } | null,
): { url: string; named: boolean } | null {
  if (!url) return null;
  if (!names || !OTP_ID_PATTERN.test(names.otpId) || !ATTEMPT.test(String(names.attempt))) {
    return { url, named: false };
  }
  return { url: `${url}${url.includes('?') ? '&' : '?'}otp=${names.otpId}&attempt=${names.attempt}`, named: true };
}

/**
 * The OTP and attempt a status callback's query names (statusCallbackFor), or null when it names none: a message
 * sent before the gateway added them, or a StatusCallback set elsewhere (the messaging service's), whose report
 * is found through the message index. Only read once the request's signature is checked: Twilio signed the query.
 */
export function attemptOfStatusCallback(query: unknown): { otpId: string; attempt: number } | null {
  if (!query || typeof query !== 'object') return null;
  const { otp, attempt } = query as Record<string, unknown>;
  if (typeof otp !== 'string' || typeof attempt !== 'string') return null;
  if (!OTP_ID_PATTERN.test(otp) || !ATTEMPT.test(attempt)) return null;
  return { otpId: otp, attempt: Number(attempt) };
}
