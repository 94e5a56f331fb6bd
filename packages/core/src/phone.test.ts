import { describe, expect, it, vi } from 'vitest';
import { loadConfig } from './config.js';
import { isGatewayError } from './errors.js';
import { maskPhone, type PhoneRules, parsePhone } from './phone.js';

/**
 * Numbers whose line type libphonenumber is made to not know. With the `max` metadata every number it calls valid
 * has a type (its validity is its type patterns), so no real number reaches the unknown-type rule: these stand in
 * for the number a metadata update would leave without one. Every other number parses as the library says.
 */
const untyped = vi.hoisted(() => new Set<string>());
vi.mock('libphonenumber-js/max', async (importOriginal) => {
  const real = await importOriginal<typeof import('libphonenumber-js/max')>();
  return {
    ...real,
    parsePhoneNumberFromString: (...args: Parameters<typeof real.parsePhoneNumberFromString>) => {
      const parsed = real.parsePhoneNumberFromString(...args);
      if (parsed && untyped.has(parsed.number)) parsed.getType = () => undefined;
      return parsed;
    },
  };
});

function refusal(input: string, allowed?: ReadonlySet<string>, allowUnknownNumberType = true) {
  try {
    parsePhone(input, allowed ? { allowedCountries: allowed, allowUnknownNumberType } : undefined);
  } catch (e) {
    if (isGatewayError(e)) return { status: e.statusCode, code: e.code };
    throw e;
  }
  return null;
}

describe('parsePhone', () => {
  it('accepts mobile numbers and gives E.164, country and calling code', () => {
    expect(parsePhone('+33612345678')).toEqual({ e164: '+33612345678', country: 'FR', callingCode: '33' });
    expect(parsePhone('+447400123456')).toEqual({ e164: '+447400123456', country: 'GB', callingCode: '44' });
    expect(parsePhone('+4915123456789')).toMatchObject({ e164: '+4915123456789', country: 'DE' });
    expect(parsePhone(' +32470123456 ')).toMatchObject({ e164: '+32470123456', country: 'BE' });
  });

  it('lets through numbers that may be mobile (US numbers parse as fixed line or mobile)', () => {
    expect(parsePhone('+12015550123')).toMatchObject({ e164: '+12015550123', country: 'US', callingCode: '1' });
  });

  it.each([
    ['', 'empty'],
    ['garbage', 'not a number'],
    ['0612345678', 'national format'],
    ['33612345678', 'no plus'],
    ['+33 6 12 34 56 78', 'spaces inside'],
    ['+3361234567', 'too short'],
    ['+336123456789012345', 'too long'],
    ['+999123456789', 'unassigned country code'],
    ['+33012345678', 'invalid French number'],
  ])('refuses %j (%s) with 400 invalid_phone_number', (input) => {
    expect(refusal(input)).toEqual({ status: 400, code: 'invalid_phone_number' });
  });

  it.each([
    ['+33899123456', 'French premium rate'],
    ['+33891123456', 'French premium rate'],
    ['+33123456789', 'French fixed line'],
    ['+33800123456', 'French toll free'],
    ['+442012345678', 'UK fixed line'],
    ['+19005551234', 'US premium rate'],
    ['+447012345678', 'UK personal number'],
    ['+445512345678', 'UK UAN'],
    ['+447640123456', 'UK pager'],
  ])('refuses %s (%s), which cannot receive an SMS code, with 400 number_type_not_allowed', (input) => {
    expect(refusal(input)).toEqual({ status: 400, code: 'number_type_not_allowed' });
  });

  it.each([
    ['+33810123456', 'shared cost', 'French 0810'],
    ['+34902123456', 'shared cost', 'Spanish 902'],
    ['+41860123456789', 'voicemail', 'Swiss voicemail access'],
  ])('refuses %s, a %s number (%s), with 400 number_type_not_allowed naming its type', (input, type) => {
    expect(refusal(input)).toEqual({ status: 400, code: 'number_type_not_allowed' });
    expect(() => parsePhone(input)).toThrow(`cannot receive an SMS code (${type} number)`);
  });

  it('refuses a number of unknown line type by default, and lets it through with OTP_ALLOW_UNKNOWN_NUMBER_TYPE=true', () => {
    // the rules as the API reads them from its environment
    const rulesOf = (env: Record<string, string>): PhoneRules =>
      loadConfig(
        { OTP_SECRET: 'unit-test-secret-0123456789abcdefghijklmnop', API_KEYS: 'shop:shop-secret-0123456789', ...env },
        'api',
      ).otp;
    const byDefault = rulesOf({});
    const allowing = rulesOf({ OTP_ALLOW_UNKNOWN_NUMBER_TYPE: 'true' });
    untyped.add('+33612345678');
    try {
      expect(() => parsePhone('+33612345678', byDefault)).toThrow(
        expect.objectContaining({
          statusCode: 400,
          code: 'number_type_not_allowed',
          message: expect.stringContaining('(unknown line type)'),
        }),
      );
      expect(parsePhone('+33612345678', allowing)).toEqual({ e164: '+33612345678', country: 'FR', callingCode: '33' });
      // the setting lets the unknown type through, never a known refused one
      expect(() => parsePhone('+33899123456', allowing)).toThrow(
        expect.objectContaining({ code: 'number_type_not_allowed' }),
      );
    } finally {
      untyped.clear();
    }
    // the same number typed as the library types it (mobile) goes either way
    expect(parsePhone('+33612345678', byDefault)).toMatchObject({ e164: '+33612345678' });
  });

  it('refuses countries outside a non-empty allow-list with 403, after the validity rules', () => {
    const allowed = new Set(['FR', 'BE']);
    expect(refusal('+447400123456', allowed)).toEqual({ status: 403, code: 'country_not_allowed' });
    expect(refusal('+33612345678', allowed)).toBeNull();
    expect(refusal('+32470123456', allowed)).toBeNull();
    expect(refusal('+33899123456', allowed)).toEqual({ status: 400, code: 'number_type_not_allowed' });
    expect(refusal('garbage', allowed)).toEqual({ status: 400, code: 'invalid_phone_number' });
    expect(refusal('+447400123456', new Set())).toBeNull();
  });
});

describe('maskPhone', () => {
  it('keeps only the first four and last three characters', () => {
    expect(maskPhone('+33612345678')).toBe('+336*****678');
    expect(maskPhone('+33612345678')).not.toContain('12345');
    expect(maskPhone('+12345')).toBe('******');
  });
});
