import type { ProviderId } from './statuses.js';

/** Minimal logger shape (pino's) so core stays free of I/O dependencies. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** One SMS to send. `body` holds the code: never log it. */
export interface OutboundSms {
  readonly otpId: string;
  /** Unique per attempt (otpId:attemptNo): providers that support it use it to make a repeated call harmless. */
  readonly attemptId: string;
  /**
   * The attempt the gateway counts this message as (the one its delivery reports land on). It differs from
   * `attemptId`'s number when an interrupted attempt is resumed under its request id.
   */
  readonly attempt: number;
  /** E.164 */
  readonly to: string;
  readonly body: string;
  /** Epoch ms after which the message is useless (providers with a validity period use it). */
  readonly expiresAt: number;
  /**
   * The API key's own sender (TENANTS_FILE `sender`: an alphanumeric sender id or a number) instead of the
   * provider's configured one (TWILIO_FROM / messaging service, OCTOPUSH_SENDER); absent: the configured one.
   */
  readonly sender?: string | null;
}

/** What a provider answers when it accepted a message. */
export interface SendResult {
  /** The provider's message id, used to match delivery callbacks. */
  readonly messageId: string;
  /** The provider's own status at acceptance (e.g. Twilio `queued`). */
  readonly providerStatus?: string;
  /** What the provider says the message cost, when its answer says it (Octopush `total_cost`, Twilio `price`). */
  readonly cost?: SmsCost;
  /**
   * The message's delivery reports will name its OTP and attempt (Twilio's StatusCallback URL carries them), so
   * the gateway need not index its message id to find where they belong.
   */
  readonly reportsNameAttempt?: boolean;
}

/** A message's cost: an amount in a currency (ISO 4217). */
export interface SmsCost {
  readonly amount: number;
  readonly currency: string;
}

/** One SMS vendor. send() throws only ProviderError; see errors.ts for what each kind makes the worker do. */
export interface SmsProvider {
  readonly id: ProviderId;
  send(sms: OutboundSms, ctx: { signal: AbortSignal; log: Logger }): Promise<SendResult>;
  /**
   * What a message it accepted cost, asked after the send, for a provider that tells it later (Twilio's message
   * resource has its price once the message went out); null while it does not say. Absent: the provider says it
   * in its send answer or never.
   */
  cost?(messageId: string, ctx: { signal: AbortSignal; log: Logger }): Promise<SmsCost | null>;
}

/**
 * The provider status of an attempt accepted under an id its delivery reports will not carry: Octopush's answer
 * (code 120) to a repeated request id, whose earlier call's ticket is not told again. No report can match it.
 */
export const UNTRACKED_ACCEPTANCE = 'duplicate_request';
