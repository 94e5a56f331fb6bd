/**
 * What a provider failure makes the worker do:
 * - `retryable`: try again later (network, timeout, 5xx), next provider first if there is one;
 * - `rate_limited`: this provider asked us to slow down (429); others keep sending;
 * - `misconfigured`: this provider refuses us (auth, sender, region): try the next provider;
 * - `permanent`: no provider can help (invalid or opted-out number): stop.
 */
export type ProviderErrorKind = 'retryable' | 'rate_limited' | 'permanent' | 'misconfigured';

/** The only error a provider's send() throws. Survives a trip through Redis by its name. */
export class ProviderError extends Error {
  override readonly name = 'ProviderError';
  constructor(
    message: string,
    readonly kind: ProviderErrorKind,
    /** The provider's own error code (Twilio `code`, Octopush `code`) or an HTTP status or a network code. */
    readonly code: string,
    /** For `rate_limited`: how long the provider asked us to wait. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export const isProviderError = (e: unknown): e is ProviderError =>
  e instanceof Error && e.name === 'ProviderError' && 'kind' in e;

/** Invalid configuration: names every bad variable at once. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/** A refusal the API turns into `{"error": {"code", "message"}}` with an HTTP status. */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** Extra fields merged into the error body (e.g. status, attemptsRemaining). */
    readonly details?: Readonly<Record<string, unknown>>,
    /** Seconds for a `Retry-After` header. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export const isGatewayError = (e: unknown): e is GatewayError => e instanceof Error && e.name === 'GatewayError';
