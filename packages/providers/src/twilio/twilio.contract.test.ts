import { SIMULATOR_DEFAULTS } from '@otp-gateway/simulator';
import { describeProviderContract } from '../contract/provider.contract.js';
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
