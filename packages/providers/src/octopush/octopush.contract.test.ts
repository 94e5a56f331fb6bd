import { SIMULATOR_DEFAULTS } from '@otp-gateway/simulator';
import { describeProviderContract } from '../contract/provider.contract.js';
import { createOctopushProvider } from './octopush.provider.js';

describeProviderContract(
  'octopush',
  (env) =>
    createOctopushProvider(
      {
        apiKey: env.validCredentials ? SIMULATOR_DEFAULTS.octopush.apiKey : 'not-the-key',
        apiLogin: SIMULATOR_DEFAULTS.octopush.apiLogin,
        sender: 'OTP',
        apiBaseUrl: `${env.simulatorUrl}/v1/public`,
      },
      { timeoutMs: env.timeoutMs },
    ),
  { idempotent: true },
);
