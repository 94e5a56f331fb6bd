/**
 * The gateway's request and answer shapes, as the client sees them. They mirror the API's schemas
 * (apps/api/src/otp.schemas.ts) and are declared here so that a backend installs this package alone.
 */

/** The verification's status: whether the code can still be used. */
export type OtpStatus = 'pending' | 'approved' | 'expired' | 'locked' | 'failed';

/** The SMS's status, mapped from each provider's own statuses; it only moves forward. */
export type DeliveryStatus = 'queued' | 'sending' | 'sent' | 'delivered' | 'undelivered' | 'failed';

/** The providers the gateway sends through. */
export type ProviderId = 'twilio' | 'octopush';

/** Outcome of one provider attempt. */
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

/** One provider attempt, as `GET /v1/otp/{id}` lists it. */
export interface AttemptRecord {
  /** 1 for the first attempt, then 2, 3... */
  readonly n: number;
  readonly provider: ProviderId;
  readonly outcome: AttemptOutcome;
  /** The provider's error code, or null. */
  readonly errorCode: string | null;
  /** The provider's own delivery status (e.g. Twilio `undelivered`), or null. */
  readonly providerStatus: string | null;
  /** The provider's message id, or null before the provider accepted the message. */
  readonly messageId: string | null;
  /** ISO time the attempt started. */
  readonly at: string;
  /** ISO time of its last change. */
  readonly updatedAt: string;
  /** What the message cost, when the provider or the gateway's price table (SMS_PRICES) says. */
  readonly cost?: number;
  /** ISO 4217 currency of `cost`. */
  readonly currency?: string;
}

/** One OTP as `get` and `status` return it. Never holds the code. */
export interface OtpView {
  /** `otp_` and 32 hex digits. */
  readonly id: string;
  readonly status: OtpStatus;
  readonly deliveryStatus: DeliveryStatus;
  /** The provider that sent the message that counts, or null before any did. */
  readonly provider: ProviderId | null;
  /** E.164 */
  readonly phoneNumber: string;
  /** ISO time after which the code no longer verifies. */
  readonly expiresAt: string;
  /** ISO time the OTP was created. */
  readonly createdAt: string;
  /** The correlation metadata given at send time ({} when none). */
  readonly metadata: Readonly<Record<string, string>>;
  readonly attempts: readonly AttemptRecord[];
}

/** The gateway's answer to a send: the OTP is created and its SMS queued. */
export interface SendResult {
  readonly id: string;
  readonly status: 'pending';
  readonly deliveryStatus: 'queued';
  /** The number in E.164, as the gateway normalised it. */
  readonly phoneNumber: string;
  /** ISO time after which the code no longer verifies. */
  readonly expiresAt: string;
}

/** Options of a send. */
export interface SendOptions {
  /** Message language, e.g. `en`, `fr` or `fr-FR` (the gateway's default is English). */
  readonly locale?: string;
  /**
   * Correlation pairs kept with the OTP, returned by `get` and carried in every status webhook: up to 10, keys of
   * 1-40 letters, digits or `_.:-`, values up to 256 characters. Not for secrets.
   */
  readonly metadata?: Readonly<Record<string, string>>;
  /**
   * Makes the send repeat-safe for 24 h: the same key with the same number and locale returns the first answer
   * and sends nothing new. Give your own (1 to 128 printable ASCII characters, no space) to make your retries safe too;
   * without one the client generates one per call, so that its own retry is safe.
   */
  readonly idempotencyKey?: string;
}

/** Which OTP a code is checked against: one OTP by id, or the newest OTP of a number under your API key. */
export type VerifyTarget =
  | { readonly id: string; readonly phoneNumber?: never }
  | { readonly phoneNumber: string; readonly id?: never };

/** The code was right: the OTP is now approved (a code is approved at most once). */
export interface VerifyApproved {
  readonly ok: true;
  readonly id: string;
  readonly status: 'approved';
}

/**
 * Why the gateway refused a code:
 * - `wrong_code` (422): one try used, see `attemptsRemaining`;
 * - `otp_not_found` (404): no such OTP under this API key;
 * - `already_approved` (409): the code was already used;
 * - `otp_expired`, `otp_replaced` (a newer code was sent to the number), `otp_failed` (never delivered) (410);
 * - `otp_locked` (423): out of attempts, even the right code now fails;
 * - `rate_limited`, `number_locked` (429): wait `retryAfterSeconds`.
 *
 * Open-ended: a newer gateway may add codes under the same HTTP statuses.
 */
export type VerifyRefusalCode =
  | 'wrong_code'
  | 'otp_not_found'
  | 'already_approved'
  | 'otp_expired'
  | 'otp_replaced'
  | 'otp_failed'
  | 'otp_locked'
  | 'rate_limited'
  | 'number_locked'
  | (string & {});

/** The gateway refused the code: an expected outcome (the person mistyped, waited too long...), not an exception. */
export interface VerifyRefused {
  readonly ok: false;
  readonly code: VerifyRefusalCode;
  /** The gateway's explanation, in English; never contains the code. */
  readonly message: string;
  /** The OTP the code was checked against, when the gateway knows it. */
  readonly id?: string;
  /** The OTP's status after this check, when known. */
  readonly status?: OtpStatus;
  /** Wrong codes still allowed on this OTP, when known (0 once it is locked, expired or used). */
  readonly attemptsRemaining?: number;
  /** For a 429: seconds to wait before trying again. */
  readonly retryAfterSeconds?: number;
}

/** What `verify` resolves: check `ok`. */
export type VerifyResult = VerifyApproved | VerifyRefused;

/** The gateway is ready: its store answers. */
export interface HealthResult {
  readonly status: 'ready';
}

/** The part of `RequestInit` the client passes to `fetch`. */
export interface FetchInit {
  readonly method: 'GET' | 'POST';
  readonly headers: Record<string, string>;
  readonly body?: string;
  readonly signal: AbortSignal;
}

/** The part of `Response` the client reads. */
export interface FetchResponse {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}

/** A `fetch` the client can call: the global one, undici's, or a wrapper (proxy, tracing, tests). */
export type FetchLike = (url: string, init: FetchInit) => Promise<FetchResponse>;

/** Options of `createOtpClient`. */
export interface OtpClientOptions {
  /** The gateway's origin, optionally with a path prefix: `https://otp.internal.example.com`. */
  readonly baseUrl: string;
  /** An API key secret from the gateway's `API_KEYS`; OTPs are visible only to the key that created them. */
  readonly apiKey: string;
  /** Deadline of each HTTP exchange, answer body included (default 5000). */
  readonly timeoutMs?: number;
  /** The `fetch` to use (default: the global one, looked up at each call). */
  readonly fetch?: FetchLike;
}

/** A client of one gateway under one API key. Its methods throw only `OtpGatewayError` (and `TypeError` for misuse). */
export interface OtpClient {
  /**
   * Creates an OTP for `phoneNumber` (E.164, e.g. `+33612345678`) and queues its SMS.
   * Retries once, with the same Idempotency-Key, after a network error, a timeout or a 503, honouring
   * `Retry-After` up to 2 s; so a send takes at most about `2 × timeoutMs + 2 s`.
   * Throws `OtpGatewayError`: 400 `invalid_phone_number` / `number_type_not_allowed` / `invalid_metadata` /
   * `invalid_request`, 401 `unauthorized`, 403 `country_not_allowed`, 422 `idempotency_key_reused`, 429
   * `resend_cooldown` / `too_many_sends` / `number_locked` / `rate_limited` and the abuse guards' `prefix_velocity`
   * / `low_conversion` / `country_budget_exhausted` / `key_budget_exhausted` (with `retryAfterSeconds`), 503
   * `store_unavailable`, `network_error`, `timeout`, `unexpected_response`.
   */
  send(phoneNumber: string, options?: SendOptions): Promise<SendResult>;
  /**
   * Checks the code the person typed. Resolves `{ ok: true }` when approved and `{ ok: false, code, ... }` when the
   * gateway refuses it (see `VerifyRefusalCode`). Never retried: a repeated wrong code would cost another try.
   * Throws `OtpGatewayError` for anything else: 400 `invalid_code_format` (not the configured number of digits:
   * check the format before calling when a person types it), `invalid_phone_number`, `invalid_request`,
   * 401, 5xx, `network_error`, `timeout`, `unexpected_response` (any other answer, a 2xx included).
   */
  verify(target: VerifyTarget, code: string): Promise<VerifyResult>;
  /**
   * One OTP by id. Throws `OtpGatewayError` 404 `otp_not_found` when unknown, created under another key, or not an
   * id the gateway makes (then without a request); `unexpected_response` for an answer that is not the gateway's.
   */
  get(id: string): Promise<OtpView>;
  /** The newest OTP of `phoneNumber` under this API key. Throws `OtpGatewayError` 404 `otp_not_found` when none. */
  status(phoneNumber: string): Promise<OtpView>;
  /**
   * Whether the gateway can serve OTPs: `GET /readyz` (its store answers), not mere liveness.
   * Throws `OtpGatewayError` 503 `store_unavailable` when not ready, `network_error` or `timeout` when unreachable,
   * `unexpected_response` for an answer that is not the gateway's.
   */
  health(): Promise<HealthResult>;
}
