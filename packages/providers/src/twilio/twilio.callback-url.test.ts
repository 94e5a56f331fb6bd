import { describe, expect, it } from 'vitest';
import { attemptOfStatusCallback, statusCallbackFor } from './twilio.callback-url.js';

const ID = `otp_${'a1'.repeat(16)}`;

describe('the StatusCallback naming the attempt', () => {
  it('reads back what it writes', () => {
    const url = statusCallbackFor('https://otp.example.com/webhooks/twilio/status', ID, 7);
    expect(url).toBe(`https://otp.example.com/webhooks/twilio/status?otp=${ID}&attempt=7`);
    const query = Object.fromEntries(new URL(url).searchParams);
    expect(attemptOfStatusCallback(query)).toEqual({ otpId: ID, attempt: 7 });
  });

  it('keeps a query the configured URL already has', () => {
    expect(statusCallbackFor('https://h/status?x=1', ID, 1)).toBe(`https://h/status?x=1&otp=${ID}&attempt=1`);
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
