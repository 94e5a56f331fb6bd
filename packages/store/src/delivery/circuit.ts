import type { ProviderId } from '@otp-gateway/core';
import type { Keyspace } from '../keyspace.js';
import type { RedisClient } from '../redis/connection.js';
import { CLOCK_LUA, defineScript } from '../redis/script.js';
import { createCircuitTrust, DEFAULT_TRUST_MS } from './circuit-trust.js';

/**
 * The provider circuit breaker: the whole policy is in this file. Every provider's state is one hash in the
 * `{cir}` slot, shared by every worker and the callbacks app:
 * `fails` (failures since the last success), `openUntil` (no sends before, ms), `pausedUntil` (a 429 asked us
 * to wait), `rateSec`/`rateN` (sends in the current second, for the per-provider rate limit).
 *
 * - Transport and server failures (`retryable`) count, and at `threshold` the circuit opens for `cooldownMs`.
 * - Messages reported undelivered, or that never got a receipt, count too, without opening it at once: the next
 *   pick of that provider does (below). A receipt that could not come is not counted (sweep.ts: a message reported
 *   sent, or accepted under an id no report carries). Refusals (`misconfigured`, `permanent`) do not count: they concern one
 *   number or one route, not the provider's health.
 * - A 429 (`rate_limited`) pauses only that provider for the time it asked (at most MAX_PAUSE_MS; a pause already
 *   longer stands). One that asks for no time (Twilio's 20429 names none) pauses it 1 s, doubled each time the
 *   provider answers such a 429 again soon after a pause ended (within twice its length), up to MAX_PAUSE_MS; one
 *   that arrives while the provider is paused (a request sent before the pause) leaves the pause as it is.
 * - Half-open: once the cool-down passed, the next pick of a provider whose failures are still at the threshold
 *   goes through as the one probe, and the circuit is open again to the others for another cool-down, or until
 *   the probe succeeds (success resets `fails` and closes it).
 * - Trusted for a moment (circuit-trust.ts): a pick that finds a provider with no failures and no rate limit
 *   lets this process send through it without asking again for `trustMs` (250 ms by default), until it counts
 *   a failure against it (retryable, 429, undelivered, no receipt). The OTP's plan then starts the attempt itself
 *   (delivery.repo.ts): one round trip per send fewer, and no write to the shared `{cir}` hash, which every send
 *   of every worker would otherwise queue on. The successes of trusted sends still reset the failures others
 *   counted, at once, in at most one write per provider every 50 ms. The price: a circuit opened, or a provider
 *   paused, by another process (another worker, the callbacks app counting undelivered messages) is seen here up
 *   to `trustMs` late. A provider found with failures, paused, open or rate-limited is not trusted: each of its
 *   sends asks.
 */
const CIRCUIT_FIELDS = Object.freeze({
  fails: 'fails',
  openUntil: 'openUntil',
  pausedUntil: 'pausedUntil',
  /** The length of the last pause (ms): the next 429 that names no wait doubles it if it comes soon after. */
  lastPause: 'lastPause',
  rateSec: 'rateSec',
  rateN: 'rateN',
});
const F = CIRCUIT_FIELDS;
const FIELDS = `local FAILS, OPEN, PAUSED, RATE_SEC, RATE_N, LAST_PAUSE = '${F.fails}', '${F.openUntil}', '${F.pausedUntil}', '${F.rateSec}', '${F.rateN}', '${F.lastPause}'`;

const PICK = defineScript({
  name: 'otpCircuitPick',
  doc: 'take the first provider (in the given order) free to send now, or say how long until one is',
  keys: [],
  restKeys: 'circuits',
  args: ['now', 'threshold', 'cooldownMs'],
  restArgs: 'ratePerSecond',
  lib: `${CLOCK_LUA}${FIELDS}`,
  body: `
local now = clock(A.now)
local sec = math.floor(now / 1000)
local minWait = nil
for i = 1, #K.circuits do
  local key = K.circuits[i]
  local c = redis.call('HMGET', key, FAILS, OPEN, PAUSED, RATE_SEC, RATE_N)
  local wait = math.max(tonumber(c[2] or '0'), tonumber(c[3] or '0')) - now
  local sent = 0
  if tonumber(c[4] or '-1') == sec then sent = tonumber(c[5] or '0') end
  local limit = tonumber(A.ratePerSecond[i])
  if wait <= 0 and limit > 0 and sent >= limit then wait = 1000 - (now % 1000) end
  if wait <= 0 then
    local fails = tonumber(c[1] or '0')
    if fails >= tonumber(A.threshold) then redis.call('HSET', key, OPEN, now + tonumber(A.cooldownMs)) end
    redis.call('HSET', key, RATE_SEC, sec, RATE_N, sent + 1)
    return {'picked', 'index', i, 'fails', fails}
  end
  if not minWait or wait < minWait then minWait = wait end
end
return {'wait', 'ms', minWait or 1000}
`,
});

const FAILURE = defineScript({
  name: 'otpCircuitFailure',
  doc: 'count a failure against a provider; open or pause its circuit as the policy says',
  keys: ['circuit'],
  args: ['now', 'kind', 'threshold', 'cooldownMs', 'pauseMs', 'firstPauseMs', 'maxPauseMs'],
  lib: `${CLOCK_LUA}${FIELDS}`,
  body: `
local now = clock(A.now)
if A.kind == 'rate_limited' then
  local c = redis.call('HMGET', K.circuit, PAUSED, LAST_PAUSE)
  local ends, last = tonumber(c[1] or '0'), tonumber(c[2] or '0')
  local pause = tonumber(A.pauseMs)
  if pause then
    -- the wait it asked for; a pause already longer stands
    if now + pause > ends then redis.call('HSET', K.circuit, PAUSED, now + pause) end
    return {'paused'}
  end
  -- no wait named: back off (the length of these pauses alone is kept, for the next one)
  if now < ends then return {'paused'} end
  if last > 0 and now - ends < 2 * last then
    pause = math.min(2 * last, tonumber(A.maxPauseMs))
  else
    pause = tonumber(A.firstPauseMs)
  end
  redis.call('HSET', K.circuit, PAUSED, now + pause, LAST_PAUSE, pause)
  return {'paused'}
end
local fails = redis.call('HINCRBY', K.circuit, FAILS, 1)
if A.kind == 'retryable' and fails >= tonumber(A.threshold) then
  redis.call('HSET', K.circuit, OPEN, now + tonumber(A.cooldownMs))
  return {'open'}
end
return {'counted'}
`,
});

const STATES = defineScript({
  name: 'otpCircuitStates',
  doc: 'each provider: open (cool-down running) and paused (after a 429)',
  keys: [],
  restKeys: 'circuits',
  args: ['now'],
  lib: `${CLOCK_LUA}${FIELDS}`,
  body: `
local now = clock(A.now)
local out = {'states'}
for i = 1, #K.circuits do
  local c = redis.call('HMGET', K.circuits[i], OPEN, PAUSED)
  out[#out + 1] = 'open' .. i; out[#out + 1] = (tonumber(c[1] or '0') > now) and 1 or 0
  out[#out + 1] = 'paused' .. i; out[#out + 1] = (tonumber(c[2] or '0') > now) and 1 or 0
end
return out
`,
});

/** What counts against a provider. */
export type CircuitFailure = 'retryable' | 'rate_limited' | 'undelivered' | 'no_receipt';

export interface CircuitSettings {
  readonly failureThreshold: number;
  readonly cooldownMs: number;
  /** Messages per second per provider; 0 or absent means unlimited. */
  readonly ratePerSecond: Readonly<Partial<Record<ProviderId, number>>>;
  /** How long a provider found clear stays trusted by this process (see the top of this file); 0: never. */
  readonly trustMs?: number;
}

export type PickOutcome = { kind: 'picked'; provider: ProviderId; hadFailures: boolean } | { kind: 'wait'; ms: number };

export interface Circuits {
  /** Takes the first of `candidates` free to send now (a rate slot, or the half-open probe). */
  pick(candidates: readonly ProviderId[], now?: number): Promise<PickOutcome>;
  /**
   * The providers this process may send through now without a pick, as the plan script reads them
   * (`,twilio,octopush,`; '' when none): a recent pick found them clear, and we counted no failure against them since.
   */
  trusted(): string;
  /** Counts a failure; 'open' when this one opened the circuit. */
  failure(
    provider: ProviderId,
    kind: CircuitFailure,
    /** pauseMs: the wait a 429 asked for; absent, the circuit backs off (FIRST_PAUSE_MS, doubling). */
    opts?: { pauseMs?: number; now?: number },
  ): Promise<'open' | 'closed'>;
  /** A provider accepted a message: failures forgotten, circuit closed. */
  success(provider: ProviderId): Promise<void>;
  /** A send through a trusted provider was accepted: as success(), at most once per 50 ms (circuit-trust.ts). */
  trustedSuccess(provider: ProviderId): void;
  states(providers: readonly ProviderId[], now?: number): Promise<Record<string, { open: boolean; paused: boolean }>>;
}

/**
 * The longest a 429 pauses a provider, whatever its Retry-After says: the pause stops that provider for every worker,
 * and one bad header (a day in seconds, a far date from a proxy) must not stop it for hours. A provider still
 * limiting after it answers 429 again.
 */
export const MAX_PAUSE_MS = 60_000;

/** The first pause after a 429 that names no wait; doubled while such 429s keep coming (see the policy above). */
export const FIRST_PAUSE_MS = 1000;

/** The key of a provider's circuit (all in the `{cir}` slot). */
export const circuitKey = (ks: Keyspace, provider: ProviderId): string => ks.key('cir', provider);

export function createCircuits(redis: RedisClient, ks: Keyspace, settings: CircuitSettings): Circuits {
  const key = (p: ProviderId) => circuitKey(ks, p);
  const policy = { threshold: settings.failureThreshold, cooldownMs: settings.cooldownMs };
  const success = async (provider: ProviderId) => {
    await redis.hset(key(provider), F.fails, 0, F.openUntil, 0);
  };
  const trust = createCircuitTrust(settings.trustMs ?? DEFAULT_TRUST_MS, success);
  return {
    async pick(candidates, now = 0) {
      const generations = candidates.map(trust.genOf);
      const r = await PICK.run(
        redis,
        {},
        { now, ...policy },
        { keys: candidates.map(key), args: candidates.map((p) => settings.ratePerSecond[p] ?? 0) },
      );
      // the candidates before the one picked (all of them on a wait) were not free
      const picked = r.outcome === 'wait' ? candidates.length : Number(r.index) - 1;
      for (let i = 0; i < picked; i++) trust.withdraw(candidates[i] as ProviderId);
      if (r.outcome === 'wait') return { kind: 'wait', ms: Math.max(1, Number(r.ms)) };
      const provider = candidates[picked] as ProviderId;
      const hadFailures = Number(r.fails) > 0;
      if (hadFailures || (settings.ratePerSecond[provider] ?? 0) > 0) trust.withdraw(provider);
      else trust.grant(provider, generations[picked] as number);
      return { kind: 'picked', provider, hadFailures };
    },
    trusted: trust.list,
    trustedSuccess: trust.succeeded,
    async failure(provider, kind, opts = {}) {
      trust.failed(provider);
      const r = await FAILURE.run(
        redis,
        { circuit: key(provider) },
        {
          now: opts.now ?? 0,
          kind,
          ...policy,
          pauseMs: opts.pauseMs === undefined ? '' : Math.min(opts.pauseMs, MAX_PAUSE_MS),
          firstPauseMs: FIRST_PAUSE_MS,
          maxPauseMs: MAX_PAUSE_MS,
        },
      );
      return r.outcome === 'open' ? 'open' : 'closed';
    },
    success,
    async states(providers, now = 0) {
      if (providers.length === 0) return {};
      const r = await STATES.run(redis, {}, { now }, { keys: providers.map(key) });
      return Object.fromEntries(
        providers.map((p, i) => [p, { open: r[`open${i + 1}`] === '1', paused: r[`paused${i + 1}`] === '1' }]),
      );
    },
  };
}
