import type { Config } from '@otp-gateway/core';
import type { CircuitSettings } from './delivery/circuit.js';
import { createKeyspace, type Keyspace } from './keyspace.js';
import type { NumberRules } from './otp/otp.repo.js';
import type { RequestLimits } from './otp/request-limits.js';
import { type ConnectionRole, createRedis, type RedisClient } from './redis/connection.js';

/** A process's way into the store: one connection in the configured mode, and the key space. */
export interface StoreConnection {
  readonly redis: RedisClient;
  readonly ks: Keyspace;
}

/** Connects to the configured Redis (single, cluster or Sentinel) for `role`, under REDIS_KEY_PREFIX. */
export function connectStore(config: Pick<Config, 'redis'>, role: ConnectionRole, name: string): StoreConnection {
  return { redis: createRedis(config.redis.connection, role, name), ks: createKeyspace(config.redis.keyPrefix) };
}

/** The per-number rules from the OTP settings. */
export const numberRules = (o: Config['otp']): NumberRules => ({
  maxFailures: o.numberMaxFailures,
  lockMs: o.numberLockSeconds * 1000,
  cooldownMs: o.resendCooldownSeconds * 1000,
  maxSends: o.maxSendsPerNumber,
  windowMs: o.sendWindowSeconds * 1000,
});

/** The per-IP and per-key request limits from the OTP settings. */
export const requestLimits = (o: Config['otp']): RequestLimits => ({
  ipPerMinute: o.ipRequestsPerMinute,
  keyPerMinute: o.keyRequestsPerMinute,
});

/** The circuit policy's settings from the worker settings. */
export const circuitSettings = (c: Pick<Config, 'worker' | 'providers'>): CircuitSettings => ({
  failureThreshold: c.worker.circuitFailureThreshold,
  cooldownMs: c.worker.circuitCooldownSeconds * 1000,
  ratePerSecond: c.providers.ratePerSecond,
});
