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

/** Who may receive a code: the allowed countries and what to do with a number whose line type is unknown. */
export interface PhoneRules {
  /** ISO codes; empty: every country (OTP_ALLOWED_COUNTRIES=* or unset outside production). */
  readonly allowedCountries: ReadonlySet<string>;
  /**
   * OTP_ALLOW_UNKNOWN_NUMBER_TYPE. libphonenumber-js (`max` metadata) answers a type for every valid number of a
   * country whose metadata has type patterns: with the metadata shipped today (1.13), every country (no valid
   * number was found without one); the setting decides for a metadata update that drops a country's patterns.
   */
  readonly allowUnknownNumberType: boolean;
}

/**
 * Line types that are refused: they cannot receive an SMS code, or they bill the sender (premium rate, shared
 * cost, UAN, personal numbers that forward anywhere) and are what SMS pumping aims at. FIXED_LINE_OR_MOBILE is let
 * through: the type is not certain there (all of North America parses that way).
 */
export const REFUSED_NUMBER_TYPES: ReadonlySet<string> = new Set([
  'PREMIUM_RATE',
  'SHARED_COST',
  'PERSONAL_NUMBER',
  'UAN',
  'VOICEMAIL',
  'PAGER',
  'TOLL_FREE',
  'FIXED_LINE',
]);

const ANY: PhoneRules = { allowedCountries: new Set(), allowUnknownNumberType: true };

/**
 * Parses an E.164 number (once: the metadata lookup is the costly part) and applies the gateway's rules: valid,
 * of a line type that can receive an SMS code, from an allowed country. Throws GatewayError 400
 * `invalid_phone_number`, 400 `number_type_not_allowed` or 403 `country_not_allowed`.
 */
export function parsePhone(input: string, rules: PhoneRules = ANY): ParsedPhone {
  const trimmed = input.trim();
  if (!/^\+[1-9]\d{6,14}$/.test(trimmed)) {
    throw new GatewayError(400, 'invalid_phone_number', 'phoneNumber must be in E.164 format, e.g. +33612345678');
  }
  const parsed = parsePhoneNumberFromString(trimmed);
  if (!parsed?.isValid() || !parsed.country) {
    throw new GatewayError(400, 'invalid_phone_number', 'phoneNumber is not a valid phone number');
  }
  const type = parsed.getType();
  if (type ? REFUSED_NUMBER_TYPES.has(type) : !rules.allowUnknownNumberType) {
    const what = type ? `${type.toLowerCase().replaceAll('_', ' ')} number` : 'unknown line type';
    throw new GatewayError(400, 'number_type_not_allowed', `phoneNumber cannot receive an SMS code (${what})`);
  }
  if (rules.allowedCountries.size > 0 && !rules.allowedCountries.has(parsed.country)) {
    throw new GatewayError(403, 'country_not_allowed', `phone numbers from ${parsed.country} are not allowed`);
  }
  return { e164: parsed.number, country: parsed.country, callingCode: parsed.countryCallingCode };
}

/** Masks a phone number for logs: +33612345678 -> +336*****678. */
export function maskPhone(phone: string): string {
  if (phone.length <= 7) return '*'.repeat(phone.length);
  return phone.slice(0, 4) + '*'.repeat(phone.length - 7) + phone.slice(-3);
}

/** The refusal codes of the abuse guards (CONTRACT): counted in otp_api_refusals_total and logged with their reason. */
export const GUARD_REFUSALS: ReadonlySet<string> = new Set([
  'country_not_allowed',
  'number_type_not_allowed',
  'prefix_velocity',
  'low_conversion',
  'country_budget_exhausted',
  'key_budget_exhausted',
]);
