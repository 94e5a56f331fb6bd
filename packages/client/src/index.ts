/**
 * `@otp-gateway/client`: the typed client that backends use to send and verify one-time codes through the
 * SMS OTP gateway. No dependencies; runs wherever `fetch` does.
 */
export { createOtpClient } from './client.js';
export { isOtpGatewayError, OtpGatewayError, type OtpGatewayErrorInit } from './errors.js';
export type {
  AttemptOutcome,
  AttemptRecord,
  DeliveryStatus,
  FetchInit,
  FetchLike,
  FetchResponse,
  HealthResult,
  OtpClient,
  OtpClientOptions,
  OtpStatus,
  OtpView,
  ProviderId,
  SendOptions,
  SendResult,
  VerifyApproved,
  VerifyRefusalCode,
  VerifyRefused,
  VerifyResult,
  VerifyTarget,
} from './types.js';
export {
  type StatusEvent,
  type StatusEventType,
  type VerifyWebhookOptions,
  verifyWebhook,
  WebhookVerificationError,
} from './webhooks.js';
