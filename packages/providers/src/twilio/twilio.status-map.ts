import type { DeliveryStatus } from '@otp-gateway/core';

/** Twilio MessageStatus values (twilio.com/docs/messaging/api/message-resource#message-status-values). */
const STATUS_MAP: Readonly<Record<string, DeliveryStatus>> = Object.freeze({
  accepted: 'queued',
  scheduled: 'queued',
  queued: 'queued',
  sending: 'sending',
  sent: 'sent',
  delivered: 'delivered',
  read: 'delivered',
  undelivered: 'undelivered',
  failed: 'failed',
  canceled: 'failed',
});

/** Maps a Twilio MessageStatus onto the gateway's delivery status; null for a status it does not know. */
export function mapTwilioStatus(status: string): DeliveryStatus | null {
  return STATUS_MAP[status.trim().toLowerCase()] ?? null;
}

/**
 * Delivery ErrorCodes (status callbacks) that say no provider can reach the number: 30004 blocked,
 * 30005 unknown handset, 30006 landline or unreachable carrier, 21610 opted out. Others (30003
 * unreachable handset, 30008 unknown error...) may pass on a later try or through another provider.
 */
export const TWILIO_PERMANENT_DELIVERY_ERRORS: ReadonlySet<string> = new Set(['30004', '30005', '30006', '21610']);
