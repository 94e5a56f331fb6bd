import { bucketTag, type Keyspace } from '../keyspace.js';
import type { RedisClient } from '../redis/connection.js';
import { defineScript } from '../redis/script.js';

/**
 * Request counters per client IP and per API key: fixed one-minute windows that start at a subject's first
 * request. Each counter has its own slot (a hash bucket of the subject, so an IP string never picks one) and is
 * counted in its own step, before the OTP's script: a crash in between has counted a request that did nothing,
 * which is all a limiter may lose.
 */
const HIT = defineScript({
  name: 'otpRateHit',
  doc: 'count one request in a fixed window; refuse past the limit',
  keys: ['counter'],
  args: ['limit', 'windowMs'],
  body: `
local n = redis.call('INCR', K.counter)
if n == 1 then redis.call('PEXPIRE', K.counter, A.windowMs) end
if n > tonumber(A.limit) then
  local ttl = redis.call('PTTL', K.counter)
  if ttl < 0 then ttl = tonumber(A.windowMs) end
  return {'limited', 'ms', ttl}
end
return {'ok'}
`,
});

export interface RequestLimits {
  readonly ipPerMinute: number;
  readonly keyPerMinute: number;
}

/** A refusal: which limit, and in how long a request may succeed. */
export interface Limited {
  readonly kind: 'limited';
  readonly scope: 'ip' | 'key' | 'number_locked' | 'cooldown' | 'number_window';
  readonly retryAfterMs: number;
}

export interface RequestLimiter {
  /** Counts one request from `ip` under `keyName`; the refusal when either is past its limit, else null. */
  hit(ip: string, keyName: string): Promise<Limited | null>;
}

export function createRequestLimiter(redis: RedisClient, ks: Keyspace, limits: RequestLimits): RequestLimiter {
  const counter = (kind: 'ip' | 'key', subject: string) =>
    ks.key(bucketTag('r', `${kind}:${subject}`), `${kind}:${subject}`);
  const one = async (scope: 'ip' | 'key', subject: string, limit: number): Promise<Limited | null> => {
    const r = await HIT.run(redis, { counter: counter(scope, subject) }, { limit, windowMs: 60_000 });
    return r.outcome === 'limited' ? { kind: 'limited', scope, retryAfterMs: Math.max(1, Number(r.ms)) } : null;
  };
  return {
    async hit(ip, keyName) {
      const [byIp, byKey] = await Promise.all([
        one('ip', ip, limits.ipPerMinute),
        one('key', keyName, limits.keyPerMinute),
      ]);
      return byIp ?? byKey;
    },
  };
}

/** Counts requests per client address for one process kind (`scope`, e.g. `cb` for the callbacks app). */
export interface AddressLimiter {
  /** Counts one request from `ip`; the refusal when it is past `perMinute`, else null. */
  hit(ip: string): Promise<Limited | null>;
}

export function createAddressLimiter(
  redis: RedisClient,
  ks: Keyspace,
  scope: string,
  perMinute: number,
): AddressLimiter {
  return {
    async hit(ip) {
      const subject = `${scope}:${ip}`;
      const counter = ks.key(bucketTag('r', subject), subject);
      const r = await HIT.run(redis, { counter }, { limit: perMinute, windowMs: 60_000 });
      return r.outcome === 'limited' ? { kind: 'limited', scope: 'ip', retryAfterMs: Math.max(1, Number(r.ms)) } : null;
    },
  };
}
