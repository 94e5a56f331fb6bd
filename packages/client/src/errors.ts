/** What an `OtpGatewayError` carries. */
export interface OtpGatewayErrorInit {
  /** The HTTP status, or undefined when no answer came (network error, timeout). */
  readonly status?: number;
  readonly code: string;
  readonly message: string;
  readonly retryAfterSeconds?: number;
  /** The underlying failure of a network error. */
  readonly cause?: unknown;
}

/**
 * The one error the client throws for a failed call. `code` is the gateway's stable snake_case code
 * (`invalid_phone_number`, `unauthorized`, `resend_cooldown`, `store_unavailable`, ...), or one of the client's:
 * `network_error` (the gateway could not be reached), `timeout` (no whole answer within `timeoutMs`),
 * `unexpected_response` (an answer that is not the gateway's JSON, e.g. a proxy's error page).
 * Its message never holds a code, an API key or a phone number.
 */
export class OtpGatewayError extends Error {
  override readonly name = 'OtpGatewayError';
  /** The HTTP status, or undefined when no answer came. */
  readonly status: number | undefined;
  readonly code: string;
  /** Seconds the gateway asked to wait (`Retry-After`, on 429 and 503), when it said. */
  readonly retryAfterSeconds: number | undefined;

  constructor(init: OtpGatewayErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }
}

/** True for an `OtpGatewayError`, also one from another copy of this package. */
export const isOtpGatewayError = (e: unknown): e is OtpGatewayError =>
  e instanceof Error && e.name === 'OtpGatewayError' && typeof (e as { code?: unknown }).code === 'string';
