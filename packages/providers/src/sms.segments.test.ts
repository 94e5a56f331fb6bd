import { describe, expect, it } from 'vitest';
import { isGsm7, smsSegments } from './sms.segments.js';

describe('isGsm7', () => {
  it('accepts the GSM alphabet, French accents it holds and extension characters', () => {
    expect(isGsm7('Votre code de vérification est 1234 à utiliser, {€}')).toBe(true);
  });

  it('refuses characters outside it', () => {
    expect(isGsm7('ç')).toBe(false);
    expect(isGsm7('forêt')).toBe(false);
    expect(isGsm7('code 🔐')).toBe(false);
  });
});

describe('smsSegments', () => {
  it('fits 160 GSM-7 septets in one part, then 153 per part', () => {
    expect(smsSegments('a'.repeat(160))).toEqual({ encoding: 'GSM-7', units: 160, segments: 1 });
    expect(smsSegments('a'.repeat(161))).toEqual({ encoding: 'GSM-7', units: 161, segments: 2 });
    expect(smsSegments('a'.repeat(306)).segments).toBe(2);
    expect(smsSegments('a'.repeat(307)).segments).toBe(3);
  });

  it('counts extension characters twice', () => {
    expect(smsSegments('€'.repeat(80))).toEqual({ encoding: 'GSM-7', units: 160, segments: 1 });
    expect(smsSegments(`${'€'.repeat(80)}a`).segments).toBe(2);
  });

  it('switches to UCS-2 (70, then 67 per part) for any other character', () => {
    expect(smsSegments('ê'.repeat(70))).toEqual({ encoding: 'UCS-2', units: 70, segments: 1 });
    expect(smsSegments('ê'.repeat(71)).segments).toBe(2);
    expect(smsSegments('🔐').units).toBe(2);
  });

  it('takes no part for an empty text', () => {
    expect(smsSegments('').segments).toBe(0);
  });
});
