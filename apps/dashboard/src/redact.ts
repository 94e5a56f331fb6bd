import { maskPhone } from '@otp-gateway/core';

/** Keys whose values Bull Board must never show: anything that holds or leads to a code or a secret. */
const SECRET_KEY = /^(code|otp|pin|body|text|sms)$|sealed|secret|token|password|passcode/i;
/** Keys that hold a phone number, shown masked as in the logs. */
const PHONE_KEY = /^(to|from|phone|phoneNumber|number|recipient|msisdn)$/i;
/** A number in E.164 anywhere in a string (a status event's body is JSON text that holds the number). */
const E164_IN_TEXT = /\+[1-9]\d{6,14}/g;

/**
 * Job data as the dashboard shows it. A send job holds the OTP id only; a status event job its webhook id, API key
 * name and the webhook's body (JSON text with the phone number and the caller's metadata), hidden as `body`. Any
 * field named like a code, a secret or an SMS text that a later job type might carry is hidden too, phone number
 * fields are masked, and so is any E.164 number inside any string. Everything else (ids, times, locale, calling
 * code) is left as is, for operators to find a job.
 */
export function redactJobData(data: unknown, depth = 0): unknown {
  if (depth > 8) return '[nested]';
  if (Array.isArray(data)) return data.map((v) => redactJobData(v, depth + 1));
  // whatever its key: a number inside text is masked too, so a field renamed or added later cannot show one
  if (typeof data === 'string') return data.replace(E164_IN_TEXT, (n) => maskPhone(n));
  if (data === null || typeof data !== 'object') return data;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    if (SECRET_KEY.test(key)) out[key] = key.startsWith('sealed') ? '[sealed]' : '[redacted]';
    else if (PHONE_KEY.test(key) && typeof value === 'string') out[key] = maskPhone(value);
    else out[key] = redactJobData(value, depth + 1);
  }
  return out;
}
