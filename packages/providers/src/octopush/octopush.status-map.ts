import type { DeliveryStatus } from '@otp-gateway/core';

/** Octopush delivery report statuses (its "acknowledge receipt" callback). */
const STATUS_MAP: Readonly<Record<string, DeliveryStatus>> = Object.freeze({
  SENT: 'sent',
  ACK: 'sent',
  // Octopush could not learn the outcome: claim neither delivery nor failure.
  UNKNOWN_DELIVERY: 'sent',
  DELIVERED: 'delivered',
  READ: 'delivered',
  NOT_DELIVERED: 'undelivered',
  NOT_ALLOWED: 'failed',
  BAD_DESTINATION: 'failed',
  BLACKLISTED_NUMBER: 'failed',
});

/** Maps an Octopush delivery status onto the gateway's; null for one it does not know (e.g. UNDEFINED). */
export function mapOctopushStatus(status: string): DeliveryStatus | null {
  return STATUS_MAP[status.trim().toUpperCase()] ?? null;
}

/** Statuses that say no provider can reach the number (bad number, or it asked to receive nothing). */
export const OCTOPUSH_PERMANENT_STATUSES: ReadonlySet<string> = new Set(['BAD_DESTINATION', 'BLACKLISTED_NUMBER']);
