export * from './config.js';
export * from './errors.js';
export * from './otp.js';
export * from './phone.js';
export * from './provider.js';
export * from './secrets.js';
export * from './statuses.js';
