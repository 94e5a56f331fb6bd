// Redis: connections for each mode, the clock, the start-up checks, named scripts.

// Delivery: attempts, circuits, the message index, reports, the sweep.
export * from './delivery/circuit.js';
export * from './delivery/delivery.repo.js';
export * from './delivery/life-left.js';
export * from './delivery/messages.js';
export * from './delivery/reports.js';
export * from './delivery/sweep.js';
export * from './delivery/sweeper.js';
// Status events: the outbox in the due sets, the events queue.
export * from './events/expiry.script.js';
export * from './events/status-events.js';
// The abuse guards: velocity, conversion watch, daily budgets, the index of blocks.
export * from './guards/guard.record.js';
export * from './guards/guards.js';
// Jobs: every kind of send job.
export * from './jobs/send-jobs.js';
// The key space: prefixes, hash tags, partitions, shards.
export * from './keyspace.js';
// OTP records: the owner file, the request-path scripts, limiters, idempotency.
export * from './otp/idempotency.js';
export * from './otp/otp.record.js';
export * from './otp/otp.repo.js';
export * from './otp/otp.view.js';
export * from './otp/request-limits.js';
export * from './redis/check.js';
export * from './redis/clock.js';
export * from './redis/connection.js';
export * from './redis/durability.js';
export * from './redis/errors.js';
export * from './redis/script.js';
export * from './redis/store-away.js';
// Wiring from the configuration.
export * from './settings.js';
