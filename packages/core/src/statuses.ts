/** The providers the gateway can send through. */
export const PROVIDER_IDS = ['twilio', 'octopush'] as const;
export type ProviderId = (typeof PROVIDER_IDS)[number];
export const isProviderId = (v: string): v is ProviderId => (PROVIDER_IDS as readonly string[]).includes(v);

/** The verification's status: whether the code can still be used. */
export const OTP_STATUSES = ['pending', 'approved', 'expired', 'locked', 'failed'] as const;
export type OtpStatus = (typeof OTP_STATUSES)[number];

/** The SMS's status, as the providers report it, mapped onto one enum. */
export const DELIVERY_STATUSES = ['queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/**
 * Order of delivery statuses: a status may only replace one of a lower rank.
 * The three final ones share the top rank, so the first final report wins.
 */
export const DELIVERY_RANK: Readonly<Record<DeliveryStatus, number>> = Object.freeze({
  queued: 0,
  sending: 1,
  sent: 2,
  delivered: 3,
  undelivered: 3,
  failed: 3,
});

/** True when `next` may replace `current` (statuses only move forward). */
export const deliveryMovesForward = (current: DeliveryStatus, next: DeliveryStatus): boolean =>
  DELIVERY_RANK[next] > DELIVERY_RANK[current];

export const isFinalDelivery = (s: DeliveryStatus): boolean => DELIVERY_RANK[s] === 3;

/**
 * The OTP funnel metric, one definition for every process that counts a stage of it (the API: requested,
 * approved, expired, locked, wrong_code; the worker: sent, failed; the callbacks app: delivered, undelivered,
 * failed). Labels are a stage, a provider ('none' before any) and the number's country calling code: never a
 * number or a code.
 */
export const FUNNEL_METRIC = Object.freeze({
  name: 'otp_funnel_total',
  help: 'OTP funnel events by stage, provider and country calling code',
  labelNames: ['stage', 'provider', 'cc'] as const,
});
