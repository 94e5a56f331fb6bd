import { describe, expect, it } from 'vitest';
import { attemptOfStatusCallback, statusCallbackFor } from './twilio.callback-url.js';

const ID = `otp_${'a1'.repeat(16)}`;

describe('the StatusCallback naming the attempt', () => {
  it('reads back what it writes', () => {
    const url = `https://otp.example.com/webhooks/twilio/status?otp=${ID}&attempt=7`;
    expect(statusCallbackFor('https://otp.example.com/webhooks/twilio/status', { otpId: ID, attempt: 7 })).toEqual({
      url,
      named: true,
    });
    const query = Object.fromEntries(new URL(url).searchParams);
    expect(attemptOfStatusCallback(query)).toEqual({ otpId: ID, attempt: 7 });
  });

  it('keeps a query the configured URL already has', () => {
    expect(statusCallbackFor('https://h/status?x=1', { otpId: ID, attempt: 1 })?.url).toBe(
      `https://h/status?x=1&otp=${ID}&attempt=1`,
    );
  });

  it('is none without a configured URL, and the URL as configured when it is not to name the attempt', () => {
    expect(statusCallbackFor(null, { otpId: ID, attempt: 1 })).toBeNull();
    expect(statusCallbackFor('https://h/status', null)).toEqual({ url: 'https://h/status', named: false });
  });

  it('names nothing it could not read back (the message is then indexed)', () => {
    for (const [id, attempt] of [
      ['o1', 1],
      [ID, 0],
      [ID, 10_000],
      [ID, 1.5],
    ] as const) {
      expect(statusCallbackFor('https://h/status', { otpId: id, attempt: attempt })).toEqual({
        url: 'https://h/status',
        named: false,
      });
    }
  });

  it('names nothing when the query lacks either part or holds anything else', () => {
    for (const query of [
      undefined,
      {},
      { otp: ID },
      { attempt: '1' },
      { otp: 'otp_nothex', attempt: '1' },
      { otp: ID, attempt: '0' },
      { otp: ID, attempt: '01' },
      { otp: ID, attempt: '1.5' },
      { otp: ID, attempt: '99999' },
      { otp: [ID, ID], attempt: '1' },
      { otp: `${ID}x`, attempt: '1' },
    ]) {
      expect(attemptOfStatusCallback(query)).toBeNull();
    }
  });
});
