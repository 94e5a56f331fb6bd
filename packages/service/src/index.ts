export * from './otp.service.js';
export * from './otp.types.js';
export { notFound } from './refusals.js';
export * from './startup.js';
export * from './status-webhooks/webhook.sender.js';
export * from './tenants/tenant.registry.js';
