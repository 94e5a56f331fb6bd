import { loadConfig } from '@otp-gateway/core';
import { describe, expect, it } from 'vitest';
import { receiptProviders } from './send.worker.js';

const base = {
  OTP_SECRET: 'send-worker-test-secret-0123456789abcdefghij',
  API_KEYS: 'shop:shop-secret-0123456789',
  SMS_PROVIDERS: 'twilio,octopush',
  TWILIO_ACCOUNT_SID: 'AC1',
  TWILIO_AUTH_TOKEN: 'token',
  TWILIO_FROM: '+15005550006',
  OCTOPUSH_API_KEY: 'key',
  OCTOPUSH_API_LOGIN: 'login@example.com',
  PUBLIC_WEBHOOK_BASE_URL: 'http://127.0.0.1:3001',
};

describe('the providers whose receipts the worker awaits', () => {
  it('regression: not Octopush without OCTOPUSH_WEBHOOK_TOKEN (its callbacks are refused: every code was resent)', () => {
    expect([...receiptProviders(loadConfig(base, 'worker'))]).toEqual(['twilio']);
    const withToken = loadConfig({ ...base, OCTOPUSH_WEBHOOK_TOKEN: 'octopush-token-0123456789' }, 'worker');
    expect([...receiptProviders(withToken)]).toEqual(['twilio', 'octopush']);
  });

  it('not Twilio without PUBLIC_WEBHOOK_BASE_URL (its sends name no StatusCallback)', () => {
    const { PUBLIC_WEBHOOK_BASE_URL: _, ...noBase } = base;
    const env = { ...noBase, OCTOPUSH_WEBHOOK_TOKEN: 'octopush-token-0123456789' };
    expect([...receiptProviders(loadConfig(env, 'worker'))]).toEqual(['octopush']);
    // a messaging service may post its own status callbacks to the callbacks app: its messages stay indexed
    const { TWILIO_FROM: __, ...noFrom } = env;
    const mss = loadConfig({ ...noFrom, TWILIO_MESSAGING_SERVICE_SID: `MG${'0'.repeat(32)}` }, 'worker');
    expect([...receiptProviders(mss)]).toEqual(['twilio', 'octopush']);
  });
});
