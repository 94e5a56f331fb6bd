import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { GatewayError } from './errors.js';

/** A phone number that passed the gateway's rules. */
export interface ParsedPhone {
  /** E.164, e.g. +33612345678 */
  readonly e164: string;
  /** ISO 3166-1 alpha-2, e.g. FR */
  readonly country: string;
  /** Country calling code without +, e.g. 33 (a metric label that never identifies a person). */
  readonly callingCode: string;
}

/** Line types that can receive an SMS. FIXED_LINE_OR_MOBILE and unknown ones are let through: many valid mobiles parse that way. */
const REFUSED_TYPES = new Set(['PREMIUM_RATE', 'FIXED_LINE', 'SHARED_COST', 'TOLL_FREE', 'VOICEMAIL', 'PAGER', 'UAN']);

/**
 * Parses an E.164 number and applies the gateway's rules: valid, not premium-rate, able to receive SMS,
 * and from an allowed country when `allowedCountries` is not empty.
 * Throws GatewayError 400 `invalid_phone_number` or 403 `country_not_allowed`.
 */
export function parsePhone(input: string, allowedCountries: ReadonlySet<string> = new Set()): ParsedPhone {
  const trimmed = input.trim();
  if (!/^\+[1-9]\d{6,14}$/.test(trimmed)) {
    throw new GatewayError(400, 'invalid_phone_number', 'phoneNumber must be in E.164 format, e.g. +33612345678');
  }
  const parsed = parsePhoneNumberFromString(trimmed);
  if (!parsed?.isValid() || !parsed.country) {
    throw new GatewayError(400, 'invalid_phone_number', 'phoneNumber is not a valid phone number');
  }
  const type = parsed.getType();
  if (type && REFUSED_TYPES.has(type)) {
    throw new GatewayError(
      400,
      'invalid_phone_number',
      `phoneNumber cannot receive an SMS code (${type.toLowerCase().replaceAll('_', ' ')} number)`,
    );
  }
  if (allowedCountries.size > 0 && !allowedCountries.has(parsed.country)) {
    throw new GatewayError(403, 'country_not_allowed', `phone numbers from ${parsed.country} are not allowed`);
  }
  return { e164: parsed.number, country: parsed.country, callingCode: parsed.countryCallingCode };
}

/** Masks a phone number for logs: +33612345678 -> +336*****678. */
export function maskPhone(phone: string): string {
  if (phone.length <= 7) return '*'.repeat(phone.length);
  return phone.slice(0, 4) + '*'.repeat(phone.length - 7) + phone.slice(-3);
}
