export * from './keys.js';
export * from './otp.repo.js';
export * from './otp.service.js';
export * from './queues.js';
export * from './redis.js';
export * from './delivery.repo.js';
export * from './callbacks.repo.js';
export * from './redis-check.js';
