import { describe, expect, it } from 'vitest';
import { apiError, parseRetryAfter } from './http.js';

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');

  it('reads delta-seconds and HTTP dates, and ignores anything else', () => {
    expect(parseRetryAfter('1', now)).toBe(1);
    expect(parseRetryAfter(' 120 ', now)).toBe(120);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
  });
});

describe('apiError', () => {
  it('reads the gateway error body with its details, and nothing else', () => {
    const body = { error: { code: 'wrong_code', message: 'the code is wrong' }, id: 'otp_1', attemptsRemaining: 2 };
    expect(apiError(body)).toEqual(body);
    expect(apiError({ error: { code: 'x' } })).toEqual({ error: { code: 'x', message: 'x' } });
    for (const other of [undefined, null, 'error', { error: 'x' }, { error: { message: 'm' } }]) {
      expect(apiError(other)).toBeUndefined();
    }
  });
});
