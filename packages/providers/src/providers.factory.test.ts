import type { Config } from '@otp-gateway/core';
import { describe, expect, it } from 'vitest';
import { createProviders } from './providers.factory.js';

const twilio = {
  accountSid: 'AC1',
  authToken: 't',
  from: '+15005550006',
  messagingServiceSid: null,
  apiBaseUrl: 'http://127.0.0.1:1',
};
const octopush = { apiKey: 'k', apiLogin: 'l', sender: 'OTP', apiBaseUrl: 'http://127.0.0.1:1/v1/public' };
const providers = (
  order: Config['providers']['order'],
  over: Partial<Config['providers']> = {},
): Config['providers'] => ({
  order,
  routes: new Map(),
  defaultRoute: order,
  prices: new Map(),
  priceCurrency: 'EUR',
  twilio,
  octopush,
  timeoutMs: 1000,
  ratePerSecond: { twilio: 0, octopush: 0 },
  ...over,
});

describe('createProviders', () => {
  it('returns the providers in the configured order', () => {
    expect(createProviders(providers(['octopush', 'twilio'])).map((p) => p.id)).toEqual(['octopush', 'twilio']);
    expect(createProviders(providers(['twilio'])).map((p) => p.id)).toEqual(['twilio']);
  });

  it('refuses an order that names an unconfigured provider', () => {
    expect(() => createProviders(providers(['twilio'], { twilio: null }))).toThrow(/twilio/);
  });
});
