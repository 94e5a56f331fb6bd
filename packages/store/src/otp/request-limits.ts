import { bucketTag, type Keyspace } from '../keyspace.js';
import type { RedisClient } from '../redis/connection.js';
import { defineScript } from '../redis/script.js';
import { batchPerTurn } from '../redis/turn-batch.js';

/**
 * Request counters per client IP and per API key: fixed one-minute windows that start at a subject's first
 * request. Each counter has its own slot (a hash bucket of the subject, so an IP string never picks one) and is
 * counted in its own step, before the OTP's script: a crash in between has counted a request that did nothing,
 * which is all a limiter may lose.
 *
 * The hits of one counter in one turn of the event loop are counted in one call (`INCRBY n`), made when the turn
 * ends (redis/turn-batch.ts, as the guards' batches): a busy API counts many requests of one key, or from one
 * address, per turn. Each request gets what n INCRs in a row would have answered it: the i-th of the turn counts
 * as `total - n + i`, refused past the limit (and counted all the same, as before).
 */
const HIT = defineScript({
  name: 'otpRateHit',
  doc: 'count n requests in a fixed window; the total, and the time left when it is past the limit',
  keys: ['counter'],
  args: ['n', 'limit', 'windowMs'],
  body: `
local n = redis.call('INCRBY', K.counter, A.n)
if n == tonumber(A.n) then redis.call('PEXPIRE', K.counter, A.windowMs) end
if n > tonumber(A.limit) then
  local ttl = redis.call('PTTL', K.counter)
  if ttl < 0 then ttl = tonumber(A.windowMs) end
  return {'over', 'total', n, 'ms', ttl}
end
return {'ok', 'total', n}
`,
});

/** A counter's answer to one request: past its limit, and for how long more. */
type Hit = { readonly over: false } | { readonly over: true; readonly ms: number };

/** One request's hit, waiting for its counter's call of this turn. */
interface WaitingHit {
  readonly counter: string;
  readonly limit: number;
  readonly windowMs: number;
  readonly done: (h: Hit) => void;
  readonly fail: (err: unknown) => void;
}

/** Counts hits per counter, one call per counter and turn (see above). */
function createHitBatcher(redis: RedisClient) {
  // a batch answers by one limit and window: hits of one counter under others (none today) go apart
  const inTurn = batchPerTurn<WaitingHit>((hits) => {
    const { counter, limit, windowMs } = hits[0]!;
    const n = hits.length;
    HIT.run(redis, { counter }, { n, limit, windowMs }).then(
      (r) => {
        const first = Number(r.total) - n + 1;
        const ms = Math.max(1, Number(r.ms));
        for (const [i, h] of hits.entries()) h.done(first + i > limit ? { over: true, ms } : { over: false });
      },
      (err) => {
        for (const h of hits) h.fail(err);
      },
    );
  });
  return (counter: string, limit: number, windowMs: number): Promise<Hit> =>
    new Promise((done, fail) => inTurn(`${counter}|${limit}|${windowMs}`, { counter, limit, windowMs, done, fail }));
}

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
  const hit = createHitBatcher(redis);
  const counter = (kind: 'ip' | 'key', subject: string) =>
    ks.key(bucketTag('r', `${kind}:${subject}`), `${kind}:${subject}`);
  const one = async (scope: 'ip' | 'key', subject: string, limit: number): Promise<Limited | null> => {
    const h = await hit(counter(scope, subject), limit, 60_000);
    return h.over ? { kind: 'limited', scope, retryAfterMs: h.ms } : null;
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

/**
 * Refused requests per client address, for one process kind (`scope`, e.g. `cb` for the callbacks app): each
 * refusal (a wrong token or signature, a malformed body, an unknown path) is counted, and past `perMinute` in its
 * window a refusal is answered 429 instead. Requests that pass are never counted nor refused by it: behind a
 * proxy that hides the callers' addresses, the providers' genuine callbacks come from the same address as a
 * token guesser, and must go on.
 */
export interface AddressLimiter {
  /** Counts one refused request from `ip`; the limit's refusal when it is past its limit, else null. */
  refused(ip: string): Promise<Limited | null>;
}

export function createAddressLimiter(
  redis: RedisClient,
  ks: Keyspace,
  scope: string,
  perMinute: number,
): AddressLimiter {
  const hit = createHitBatcher(redis);
  return {
    async refused(ip) {
      const subject = `${scope}:${ip}`;
      const h = await hit(ks.key(bucketTag('r', subject), subject), perMinute, 60_000);
      return h.over ? { kind: 'limited', scope: 'ip', retryAfterMs: h.ms } : null;
    },
  };
}
