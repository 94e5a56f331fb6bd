export * from './otp.service.js';
export * from './startup.js';
