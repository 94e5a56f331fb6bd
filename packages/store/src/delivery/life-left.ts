/**
 * The one rule for "enough life left": how much validity an OTP must still have for a message to be worth
 * sending. Used by the worker (send, retry, wait for a provider), the receipt check, the callbacks app and the
 * sweep; nowhere else is a minimum spelled.
 */

/** A first SMS, or a retry through the same or another provider, needs this much life left. */
export const MIN_SEND_LIFE_MS = 5_000;

/**
 * A resend after a message went out (not delivered, no receipt in time, a lost resend job) needs more: the first
 * message may still arrive, and a second code-bearing SMS that arrives seconds before expiry only confuses.
 */
export const MIN_RESEND_LIFE_MS = 15_000;

/** True when an SMS sent at `at` (epoch ms) still leaves `minLifeMs` of the OTP's life. */
export const worthSending = (at: number, expiresAt: number, minLifeMs = MIN_SEND_LIFE_MS): boolean =>
  at + minLifeMs < expiresAt;
