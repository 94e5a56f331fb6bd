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
  readonly attempts: readonly AttemptRecord[];
}

/** Queue names: the only place they are spelled. */
export const QUEUES = Object.freeze({ send: 'otp-send' });

/** Data of a send job. The code travels only encrypted (`sealedCode`, see secrets.ts). */
export interface SendJobData {
  readonly otpId: string;
  /** E.164 */
  readonly to: string;
  readonly locale: string;
  /** AES-256-GCM sealed code, bound to otpId. */
  readonly sealedCode: string;
  /** Epoch ms */
  readonly expiresAt: number;
  /** Country calling code, for metrics. */
  readonly callingCode: string;
  /**
   * Set on a delivery-timeout check (job id `{otpId}-t{n}`): when attempt n still has no final receipt,
   * the code goes out through the next provider.
   */
  readonly checkReceiptOf?: { readonly attempt: number; readonly provider: ProviderId };
}
