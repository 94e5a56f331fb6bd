export {
  DEFAULT_LOCALE,
  MESSAGE_LOCALES,
  type MessageLocale,
  type OtpMessageInput,
  renderOtpMessage,
  resolveLocale,
} from './message.template.js';
export { classifyOctopushResponse } from './octopush/octopush.errors.js';
export {
  createOctopushProvider,
  type OctopushProviderOptions,
  type OctopushSendBody,
  octopushSenderWarnings,
} from './octopush/octopush.provider.js';
export { mapOctopushStatus, OCTOPUSH_PERMANENT_STATUSES } from './octopush/octopush.status-map.js';
export { type CreateProvidersOptions, createProviders } from './providers.factory.js';
export { isGsm7, type SegmentInfo, smsSegments } from './sms.segments.js';
export {
  BUILT_IN_LOCALES,
  type BuiltInLocale,
  compileTemplates,
  type OtpTemplates,
  type RenderInput,
  TEMPLATE_PLACEHOLDERS,
  TemplateError,
  type TemplateSettings,
  tenantTemplateProblems,
} from './templates/otp-templates.js';
export { attemptOfStatusCallback } from './twilio/twilio.callback-url.js';
export { classifyTwilioResponse } from './twilio/twilio.errors.js';
export { createTwilioProvider, type TwilioProviderOptions, validityPeriodSeconds } from './twilio/twilio.provider.js';
export { mapTwilioStatus, TWILIO_PERMANENT_DELIVERY_ERRORS } from './twilio/twilio.status-map.js';
