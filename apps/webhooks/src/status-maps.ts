import type { DeliveryStatus } from '@otp-gateway/core';

// Kept here until @otp-gateway/providers exports both vendor maps (twilio.status-map.ts, octopush.status-map.ts);
// then these two functions become re-exports.

/** Twilio MessageStatus values (twilio.com/docs/messaging/api/message-resource#message-status-values). */
const TWILIO: Readonly<Record<string, DeliveryStatus>> = Object.freeze({
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

/** Octopush delivery report statuses: every final one that is not DELIVERED means the SMS will not arrive. */
const OCTOPUSH: Readonly<Record<string, DeliveryStatus>> = Object.freeze({
  ACK: 'sent',
  SENT: 'sent',
  DELIVERED: 'delivered',
  NOT_DELIVERED: 'undelivered',
  BAD_DESTINATION: 'failed',
  BLACKLISTED_NUMBER: 'failed',
  EXPIRED: 'failed',
  REJECTED: 'failed',
  ERROR: 'failed',
});

/** Maps a Twilio MessageStatus onto the gateway's delivery status; null for one it does not know. */
export const twilioStatusToDelivery = (status: string): DeliveryStatus | null =>
  TWILIO[status.trim().toLowerCase()] ?? null;

/** Maps an Octopush report status onto the gateway's delivery status; null for one it does not know. */
export const octopushStatusToDelivery = (status: string): DeliveryStatus | null =>
  OCTOPUSH[status.trim().toUpperCase()] ?? null;
