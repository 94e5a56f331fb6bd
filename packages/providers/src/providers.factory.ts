import type { Config, SmsProvider } from '@otp-gateway/core';
import { createOctopushProvider } from './octopush/octopush.provider.js';
import { createTwilioProvider } from './twilio/twilio.provider.js';

export interface CreateProvidersOptions {
  /** Twilio's StatusCallback (`${PUBLIC_WEBHOOK_BASE_URL}/webhooks/twilio/status`), or null for none. */
  readonly statusCallbackUrl?: string | null;
  /** TWILIO_CALLBACK_NAMES_ATTEMPT: each message's StatusCallback names its OTP and attempt (statusCallbackFor). */
  readonly callbackNamesAttempt?: boolean;
}

/**
 * The configured providers, in `config.order` (the first preferred), each bounded by `config.timeoutMs`.
 * Throws when the order names a provider whose configuration is missing (loadConfig prevents it).
 */
export function createProviders(config: Config['providers'], opts: CreateProvidersOptions = {}): SmsProvider[] {
  return config.order.map((id) => {
    if (id === 'twilio') {
      if (!config.twilio) throw new Error('twilio is in the provider order but not configured');
      return createTwilioProvider(config.twilio, {
        statusCallbackUrl: opts.statusCallbackUrl ?? null,
        callbackNamesAttempt: opts.callbackNamesAttempt ?? false,
        timeoutMs: config.timeoutMs,
      });
    }
    if (!config.octopush) throw new Error('octopush is in the provider order but not configured');
    return createOctopushProvider(config.octopush, { timeoutMs: config.timeoutMs });
  });
}
