import { describe, expect, it } from 'vitest';
import { isGatewayError } from './errors.js';
import { maskPhone, parsePhone } from './phone.js';

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
