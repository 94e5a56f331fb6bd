/** What the OTP use cases take and answer, independent of HTTP. */

/** Who is asking: the API key's name (OTPs are scoped to it) and the client's IP. */
export interface Caller {
  readonly keyName: string;
  readonly ip: string;
}

export interface SendRequest {
  readonly phoneNumber: string;
  readonly locale?: string | undefined;
  readonly idempotencyKey?: string | undefined;
  /** Correlation metadata (checked here too: core's metadataProblem). */
  readonly metadata?: Readonly<Record<string, string>> | undefined;
}

export interface SendAnswer {
  readonly id: string;
  readonly status: 'pending';
  readonly deliveryStatus: 'queued';
  readonly phoneNumber: string;
  readonly expiresAt: string;
}

export interface VerifyRequest {
  readonly id?: string | undefined;
  readonly phoneNumber?: string | undefined;
  readonly code: string;
}

/** An OTP by id, or the newest of a phone number (as the client gives it). */
export type OtpLookup = { by: 'id'; id: string } | { by: 'phone'; phone: string };

/** One step of an OTP's life, labelled for metrics (never a number or a code). */
export interface FunnelEvent {
  readonly stage: 'requested' | 'approved' | 'expired' | 'locked' | 'wrong_code';
  /** The provider that sent the code, or 'none'. */
  readonly provider: string;
  /** Country calling code, e.g. 33. */
  readonly callingCode: string;
}
