import type { Metadata } from './metadata.js';
import type { DeliveryStatus, OtpStatus, ProviderId } from './statuses.js';

/** Outcome of one provider attempt as recorded on the OTP. */
export type AttemptOutcome =
  | 'sending'
  | 'interrupted'
  | 'accepted'
  | 'delivered'
  | 'undelivered'
  | 'failed'
  | 'no_receipt'
  | 'retryable'
  | 'rate_limited'
  | 'misconfigured'
  | 'permanent';

/** One provider attempt, as `GET /v1/otp/{id}` shows it. */
export interface AttemptRecord {
  readonly n: number;
  readonly provider: ProviderId;
  outcome: AttemptOutcome;
  /** The provider's error code, or null. */
  errorCode: string | null;
  /** The provider's own delivery status (e.g. Twilio `undelivered`, Octopush `NOT_DELIVERED`), or null. */
  providerStatus: string | null;
  messageId: string | null;
  /** ISO time the attempt started. */
  readonly at: string;
  /** ISO time of the last change. */
  updatedAt: string;
  /** What the message cost (the provider's answer, else SMS_PRICES), when known; only on accepted attempts. */
  cost?: number;
  currency?: string;
}

/** The public view of an OTP. Never holds the code or its hash. */
export interface OtpView {
  readonly id: string;
  readonly status: OtpStatus;
  readonly deliveryStatus: DeliveryStatus;
  readonly provider: ProviderId | null;
  readonly phoneNumber: string;
  readonly expiresAt: string;
  readonly createdAt: string;
  /** The correlation metadata given at send time ({} when none). */
  readonly metadata: Metadata;
  readonly attempts: readonly AttemptRecord[];
}
