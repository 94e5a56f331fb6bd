import type { DeliveryStatus, OtpStatus, ProviderId } from './types.js';

/** The status events the gateway posts to your backend. */
export type StatusEventType =
  | 'otp.sent'
  | 'otp.delivered'
  | 'otp.undelivered'
  | 'otp.failed'
  | 'otp.approved'
  | 'otp.expired'
  | 'otp.locked';

/** One status event as posted (never holds the code). */
export interface StatusEvent {
  readonly type: StatusEventType;
  /** ISO time the gateway published the event. */
  readonly timestamp: string;
  readonly data: {
    readonly id: string;
    readonly status: OtpStatus;
    readonly deliveryStatus: DeliveryStatus;
    readonly provider: ProviderId | null;
    readonly phoneNumber: string;
    /** The metadata given at send time ({} when none). */
    readonly metadata: Readonly<Record<string, string>>;
    readonly expiresAt: string;
    readonly createdAt: string;
    /** The provider attempt the event is about (sent, delivered, undelivered), else null. */
    readonly attempt: number | null;
    readonly errorCode: string | null;
  };
}

/** Thrown by verifyWebhook: the request is not an authentic, fresh status webhook. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';
}

export interface VerifyWebhookOptions {
  /** How far `webhook-timestamp` may be from now, in seconds (default 300): older requests are replays. */
  readonly toleranceSeconds?: number;
  /** The current time in ms (tests). */
  readonly now?: number;
}

type HeaderBag = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeaderBag, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const bag = headers as Record<string, string | string[] | undefined>;
  const v = bag[name] ?? Object.entries(bag).find(([k]) => k.toLowerCase() === name)?.[1];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Verifies a status webhook per Standard Webhooks and returns its event: `payload` is the raw request body (as
 * received, before any JSON parsing), `headers` the request's headers, `secret` your `whsec_...` secret (or
 * several while you rotate: any one matching is enough). Throws WebhookVerificationError when the signature does
 * not match, a header is missing, or the timestamp is outside the tolerance. Deduplicate on `webhook-id`: a retry
 * carries the same one. Uses Web Crypto (Node 20+, Deno, Bun, workers).
 */
export async function verifyWebhook(
  payload: string | Uint8Array,
  headers: HeaderBag,
  secret: string | readonly string[],
  opts: VerifyWebhookOptions = {},
): Promise<StatusEvent> {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) throw new WebhookVerificationError('missing webhook headers');
  const ts = Number(timestamp);
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  const tolerance = opts.toleranceSeconds ?? 300;
  // a NaN tolerance (Number() of an unset variable) would let every timestamp pass: replays unchecked
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new TypeError(`toleranceSeconds must be a number of seconds, at least 0 (got ${tolerance})`);
  }
  if (!Number.isInteger(ts) || Math.abs(now - ts) > tolerance) {
    throw new WebhookVerificationError('webhook timestamp outside the tolerance');
  }
  const body = typeof payload === 'string' ? payload : new TextDecoder().decode(payload);
  const signed = new TextEncoder().encode(`${id}.${ts}.${body}`);
  const given = signatures
    .split(' ')
    .filter((s) => s.startsWith('v1,'))
    .map((s) => s.slice(3));
  // the gateway's own form of several secrets, space-separated (one variable during a rotation), is accepted too
  const secrets = (typeof secret === 'string' ? [secret] : secret).flatMap((s) => s.split(/[\s,]+/).filter(Boolean));
  for (const s of secrets) {
    const key = await crypto.subtle.importKey('raw', secretBytes(s), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
    ]);
    const expected = toBase64(new Uint8Array(await crypto.subtle.sign('HMAC', key, signed)));
    if (given.some((g) => constantTimeEqual(g, expected))) return JSON.parse(body) as StatusEvent;
  }
  throw new WebhookVerificationError('no matching webhook signature');
}

function secretBytes(secret: string): Uint8Array<ArrayBuffer> {
  const b64 = secret.startsWith('whsec_') ? secret.slice(6) : secret;
  let bin: string;
  try {
    bin = atob(b64);
  } catch {
    // a configuration error, said as such (not a failed verification: the sender would retry for a day)
    throw new TypeError('a webhook secret is not whsec_ followed by base64');
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
