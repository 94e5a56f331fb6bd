import { createHmac } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { Metadata } from './metadata.js';
import type { DeliveryStatus, OtpStatus, ProviderId } from './statuses.js';

/**
 * Status webhooks: the events the gateway posts to a backend, signed per Standard Webhooks
 * (https://www.standardwebhooks.com): headers `webhook-id` (the same on every retry), `webhook-timestamp` (seconds,
 * the time of this try) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per secret,
 * space-separated, so a receiver keeps working while secrets rotate). Secrets are `whsec_<base64>`: the key is the
 * decoded base64.
 */
export const STATUS_EVENT_TYPES = [
  'otp.sent',
  'otp.delivered',
  'otp.undelivered',
  'otp.failed',
  'otp.approved',
  'otp.expired',
  'otp.locked',
] as const;
export type StatusEventType = (typeof STATUS_EVENT_TYPES)[number];

/** The short name of an event type as the store lists it (`sent` for `otp.sent`). */
export type StatusEventName = StatusEventType extends `otp.${infer N}` ? N : never;

export const isStatusEventName = (s: string): s is StatusEventName =>
  (STATUS_EVENT_TYPES as readonly string[]).includes(`otp.${s}`);

/** What an event says of its OTP. Never the code. */
export interface StatusEventData {
  readonly id: string;
  readonly status: OtpStatus;
  readonly deliveryStatus: DeliveryStatus;
  /** The provider of the attempt the event is about (sent, delivered, undelivered), else of the attempt that counts. */
  readonly provider: ProviderId | null;
  readonly phoneNumber: string;
  readonly metadata: Metadata;
  readonly expiresAt: string;
  readonly createdAt: string;
  /** The provider attempt the event is about (sent, delivered, undelivered), else null. */
  readonly attempt: number | null;
  /** The provider's error code on that attempt, if any. */
  readonly errorCode: string | null;
}

/** The JSON body of a status webhook. `timestamp`: when the event was queued (ISO; soon after the change), not when this try was made. */
export interface StatusEventBody {
  readonly type: StatusEventType;
  readonly timestamp: string;
  readonly data: StatusEventData;
}

const SECRET_PREFIX = 'whsec_';

/** The HMAC key of a `whsec_<base64>` secret, or null when it is not one (or decodes to fewer than 24 bytes). */
export function webhookSecretKey(secret: string): Buffer | null {
  if (!secret.startsWith(SECRET_PREFIX)) return null;
  const b64 = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return null;
  const key = Buffer.from(b64, 'base64');
  return key.length >= 24 ? key : null;
}

/** The `webhook-signature` header for one try: `v1,<sig>` per secret, space-separated. */
export function signWebhook(secrets: readonly string[], id: string, timestampSeconds: number, body: string): string {
  return secrets
    .map((s) => webhookSecretKey(s))
    .filter((k): k is Buffer => k !== null)
    .map((k) => `v1,${createHmac('sha256', k).update(`${id}.${timestampSeconds}.${body}`).digest('base64')}`)
    .join(' ');
}

/**
 * Addresses a status webhook may not reach unless WEBHOOK_ALLOW_PRIVATE_NETWORKS: loopback, private, link-local
 * (cloud metadata at 169.254.169.254), carrier-grade NAT, unique-local, multicast, reserved, unspecified; IPv4
 * mapped or NAT64-embedded in IPv6 is judged as the IPv4 it carries.
 */
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['2001:db8::', 32],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv6');
}

/** True for an address status webhooks must not reach by default (see PRIVATE); anything not an IP counts as private. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return PRIVATE.check(address, 'ipv4');
  if (family !== 6) return true;
  const lower = address.toLowerCase();
  const embedded = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (embedded?.[1]) return PRIVATE.check(embedded[1], 'ipv4');
  const hexMapped = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hexMapped?.[1] && hexMapped[2]) {
    const hi = Number.parseInt(hexMapped[1], 16);
    const lo = Number.parseInt(hexMapped[2], 16);
    return PRIVATE.check(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, 'ipv4');
  }
  return PRIVATE.check(address, 'ipv6');
}
