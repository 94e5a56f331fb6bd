import { describe, expect, it } from 'vitest';
import { redactJobData } from './redact.js';

describe('redactJobData', () => {
  const sendJob = {
    otpId: 'otp_01HZX',
    to: '+33612345678',
    locale: 'fr',
    sealedCode: 'v1.Zm9vYmFyYmF6cXV4.c2VhbGVk',
    expiresAt: 1_800_000_000_000,
    callingCode: '33',
    checkReceiptOf: { attempt: 1, provider: 'twilio' },
  };

  it('hides the sealed code and masks the number of a send job, keeping what finds the job', () => {
    expect(redactJobData(sendJob)).toEqual({
      otpId: 'otp_01HZX',
      to: '+336*****678',
      locale: 'fr',
      sealedCode: '[sealed]',
      expiresAt: 1_800_000_000_000,
      callingCode: '33',
      checkReceiptOf: { attempt: 1, provider: 'twilio' },
    });
  });

  it('hides fields a later job type could carry a code or a secret in, at any depth', () => {
    const shown = JSON.stringify(
      redactJobData({
        sms: { body: 'Your code is 123456', text: '123456' },
        code: '123456',
        list: [{ otp: '654321' }],
      }),
    );
    expect(shown).not.toMatch(/123456|654321/);
    expect(redactJobData({ apiToken: 't', webhookSecret: 's', password: 'p' })).toEqual({
      apiToken: '[redacted]',
      webhookSecret: '[redacted]',
      password: '[redacted]',
    });
  });

  it('leaves scalars and empty data alone', () => {
    expect(redactJobData(null)).toBeNull();
    expect(redactJobData('x')).toBe('x');
    expect(redactJobData({})).toEqual({});
  });

  it('the status event job as the store queues it shows no number, even were its body field renamed', () => {
    const body = JSON.stringify({
      type: 'otp.delivered',
      data: { id: 'otp_1', phoneNumber: '+33612345678', metadata: { userId: 'u_1' } },
    });
    const job = { webhookId: 'wh_otp_1_delivered_1', keyName: 'shop', body };
    expect(redactJobData(job)).toEqual({ webhookId: 'wh_otp_1_delivered_1', keyName: 'shop', body: '[redacted]' });
    const renamed = JSON.stringify(redactJobData({ ...job, body: undefined, payload: body }));
    expect(renamed).not.toContain('+33612345678');
    expect(renamed).toContain('+336*****678');
  });

  it('masks a number inside any text, and leaves ids and times alone', () => {
    expect(
      redactJobData({ note: 'sent to +447400123456 at 10:00', otpId: 'otp_0123456789', at: 1_800_000_000_000 }),
    ).toEqual({ note: 'sent to +447******456 at 10:00', otpId: 'otp_0123456789', at: 1_800_000_000_000 });
  });
});
