import { buildSimulator, SIMULATOR_DEFAULTS } from '@otp-gateway/simulator';
import { describe, expect, it } from 'vitest';
import { describeProviderContract } from '../contract/provider.contract.js';
import { silentLog } from '../stub-server.test-support.js';
import { createTwilioProvider } from './twilio.provider.js';

describeProviderContract(
  'twilio',
  (env) =>
    createTwilioProvider(
      {
        accountSid: SIMULATOR_DEFAULTS.twilio.accountSid,
        authToken: env.validCredentials ? SIMULATOR_DEFAULTS.twilio.authToken : 'not-the-token',
        from: '+15005550006',
        messagingServiceSid: null,
        apiBaseUrl: env.simulatorUrl,
      },
      { timeoutMs: env.timeoutMs, statusCallbackUrl: null },
    ),
  { idempotent: false },
);

describe('twilio: the price, asked after the send', () => {
  it("reads the message resource's price from the simulator once the message went out, none before", async () => {
    const sim = await buildSimulator({ faults: { twilio: { callbackDelayMs: 30 } } });
    const url = await sim.listen({ port: 0, host: '127.0.0.1' });
    try {
      const provider = createTwilioProvider(
        {
          accountSid: SIMULATOR_DEFAULTS.twilio.accountSid,
          authToken: SIMULATOR_DEFAULTS.twilio.authToken,
          from: '+15005550006',
          messagingServiceSid: null,
          apiBaseUrl: url,
        },
        { timeoutMs: 2000, statusCallbackUrl: null },
      );
      const ctx = { signal: new AbortController().signal, log: silentLog };
      const sent = await provider.send(
        {
          otpId: 'o1',
          attemptId: 'o1:1',
          attempt: 1,
          to: '+4915112345678',
          body: 'Your code is 123456',
          expiresAt: Date.now() + 60_000,
        },
        ctx,
      );
      expect(sent.cost).toBeUndefined();
      expect(await provider.cost?.(sent.messageId, ctx)).toBeNull();
      await new Promise((r) => setTimeout(r, 150));
      expect(await provider.cost?.(sent.messageId, ctx)).toEqual({ amount: 0.0079, currency: 'USD' });
      // an unknown message: Twilio's 404 (the cost job tries again later)
      await expect(provider.cost?.('SM00000000000000000000000000000000', ctx)).rejects.toThrow();
    } finally {
      await sim.close();
    }
  });
});
