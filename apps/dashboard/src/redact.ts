import { maskPhone } from '@otp-gateway/core';

/** Keys whose values Bull Board must never show: anything that holds or leads to a code or a secret. */
const SECRET_KEY = /^(code|otp|pin|body|text|sms)$|sealed|secret|token|password|passcode/i;
/** Keys that hold a phone number, shown masked as in the logs. */
const PHONE_KEY = /^(to|from|phone|phoneNumber|number|recipient|msisdn)$/i;

/**
 * Job data as the dashboard shows it. The send job carries its code only sealed (`sealedCode`); the
 * dashboard hides even that, and any field named like a code, a secret or an SMS text that a later
 * job type might carry, and masks phone numbers. Everything else (ids, times, locale, calling code)
 * is left as is, for operators to find a job.
 */
export function redactJobData(data: unknown, depth = 0): unknown {
  if (depth > 8) return '[nested]';
  if (Array.isArray(data)) return data.map((v) => redactJobData(v, depth + 1));
  if (data === null || typeof data !== 'object') return data;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    if (SECRET_KEY.test(key)) out[key] = key.startsWith('sealed') ? '[sealed]' : '[redacted]';
    else if (PHONE_KEY.test(key) && typeof value === 'string') out[key] = maskPhone(value);
    else out[key] = redactJobData(value, depth + 1);
  }
  return out;
}
