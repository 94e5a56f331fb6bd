/**
 * Lua scripts for the send worker. An attempt's fields live in the OTP hash as `a{n}.p` (provider),
 * `a{n}.o` (outcome), `a{n}.e` (error code), `a{n}.s` (provider status), `a{n}.m` (message id),
 * `a{n}.t` (started, ms), `a{n}.u` (updated, ms); `na` counts attempts and `acc` is the attempt that counts.
 */

/** Shared: is a provider free to take a message now? Returns 0 when it is, else ms until it may be. */
const AVAILABILITY = `
local function wait_for(cirKey, rateKey, limit, now)
  local c = redis.call('HMGET', cirKey, 'openUntil', 'pausedUntil')
  local until_ = math.max(tonumber(c[1] or '0'), tonumber(c[2] or '0'))
  if until_ > now then return until_ - now end
  if tonumber(limit) > 0 and tonumber(redis.call('GET', rateKey) or '0') >= tonumber(limit) then
    return 1000 - (now % 1000)
  end
  return 0
end
`;

/**
 * Begin an attempt: check the OTP may still be sent, pick the provider, record the attempt as `sending`.
 * KEYS: 1 otp, then for each of N providers its circuit key, then for each its rate key (this second), then the
 * unstarted set (the job has started: it leaves the set).
 * ARGV: 1 now, 2 min life ms, 3 N, 4..3+N provider ids (in preference order), 4+N..3+2N rate limits per second,
 * 4+2N circuit failure threshold, 5+2N circuit cool-down ms, 6+2N lease ms (how long a send may take: while
 * it runs, another job of the same OTP waits instead of taking the attempt for interrupted), 7+2N otp id.
 * An open circuit whose cool-down passed lets one probe through (half-open) and stays closed to others until
 * the probe's result is known or another cool-down passes.
 * Returns {'go', n, provider, request attempt} | {'wait', ms} | {'busy', ms} | {'stop', reason}, where the request attempt is the
 * attempt whose request id the provider call carries (n itself, or the interrupted attempt it resumes) and reason is
 * gone | approved | expired | locked | failed | done (an attempt already went out) | too_late | exhausted.
 */
export const BEGIN_LUA = `${AVAILABILITY}
local now = tonumber(ARGV[1])
redis.call('ZREM', KEYS[#KEYS], ARGV[#ARGV])
local o = redis.call('HMGET', KEYS[1], 'status', 'exp', 'acc', 'na', 'ds')
if not o[1] then return {'stop', 'gone'} end
if o[1] ~= 'pending' then return {'stop', o[1]} end
if o[3] and o[3] ~= '' then return {'stop', 'done'} end
local na = tonumber(o[4] or '0')
local n = tonumber(ARGV[3])
local lastP, lastO = nil, nil
if na > 0 then
  local last = redis.call('HMGET', KEYS[1], 'a' .. na .. '.p', 'a' .. na .. '.o', 'a' .. na .. '.r')
  lastP, lastO = last[1], last[2]
  if lastO == 'sending' then
    -- Another job of this OTP is sending right now (its lease runs): wait for its outcome.
    local lease = tonumber(redis.call('HGET', KEYS[1], 'lease') or '0')
    if lease > now then return {'busy', lease - now} end
    -- The worker that held the lease died during the call, so whether it went out is unknown: the attempt
    -- is recorded interrupted.
    redis.call('HSET', KEYS[1], 'a' .. na .. '.o', 'interrupted', 'a' .. na .. '.u', now)
    if now + tonumber(ARGV[2]) >= tonumber(o[2]) then return {'stop', 'too_late'} end
    -- A new attempt goes to the same provider with the same request id, so a provider that deduplicates
    -- by request id (Octopush) cannot send twice.
    local origin = last[3] or tostring(na)
    na = na + 1
    local f = 'a' .. na
    redis.call('HSET', KEYS[1], 'na', na, f .. '.p', lastP, f .. '.o', 'sending', f .. '.t', now, f .. '.u', now,
      f .. '.r', origin, 'lease', now + tonumber(ARGV[6 + 2 * n]))
    return {'go', na, lastP, origin}
  end
end
if now + tonumber(ARGV[2]) >= tonumber(o[2]) then return {'stop', 'too_late'} end

local refused = {}
for i = 1, na do
  local a = redis.call('HMGET', KEYS[1], 'a' .. i .. '.p', 'a' .. i .. '.o')
  -- once per provider: one that refused us, or whose message was not delivered, is not tried again
  if a[2] == 'misconfigured' or a[2] == 'undelivered' or a[2] == 'failed' or a[2] == 'no_receipt' then
    refused[a[1]] = true
  end
end
local chosen, minWait, candidates = nil, nil, 0
local fallback = nil
for i = 1, n do
  local p = ARGV[3 + i]
  if not refused[p] then
    candidates = candidates + 1
    local w = wait_for(KEYS[1 + i], KEYS[1 + n + i], ARGV[3 + n + i], now)
    if w == 0 then
      if p ~= lastP or lastO == 'accepted' then chosen = p; break end
      fallback = fallback or i
    elseif not minWait or w < minWait then minWait = w end
  end
end
local idx = nil
if chosen then
  for i = 1, n do if ARGV[3 + i] == chosen then idx = i end end
elseif fallback then
  idx = fallback; chosen = ARGV[3 + fallback]
end
if candidates == 0 then return {'stop', 'exhausted'} end
if not chosen then return {'wait', minWait} end
local fails = tonumber(redis.call('HGET', KEYS[1 + idx], 'fails') or '0')
if fails >= tonumber(ARGV[4 + 2 * n]) then
  redis.call('HSET', KEYS[1 + idx], 'openUntil', now + tonumber(ARGV[5 + 2 * n]))
end
if redis.call('INCR', KEYS[1 + n + idx]) == 1 then redis.call('PEXPIRE', KEYS[1 + n + idx], 2000) end
na = na + 1
local f = 'a' .. na
redis.call('HSET', KEYS[1], 'na', na, f .. '.p', chosen, f .. '.o', 'sending', f .. '.t', now, f .. '.u', now,
  f .. '.r', na, 'lease', now + tonumber(ARGV[6 + 2 * n]))
-- a new attempt that will count: after a failover the status starts again from sending
if o[5] ~= 'sending' then redis.call('HSET', KEYS[1], 'ds', 'sending') end
return {'go', na, chosen, tostring(na)}
`;

/**
 * A provider accepted attempt n. KEYS: 1 otp, 2 message index, 3 circuit, 4 early callbacks of this message.
 * ARGV: 1 now, 2 n, 3 provider, 4 message id, 5 provider status, 6 index ttl ms.
 * Returns the delivery reports that arrived before the message id was recorded (JSON strings), to apply now.
 */
export const ACCEPT_LUA = `
local f = 'a' .. ARGV[2]
redis.call('HSET', KEYS[1], f .. '.o', 'accepted', f .. '.m', ARGV[4], f .. '.s', ARGV[5], f .. '.u', ARGV[1],
  'acc', ARGV[2], 'provider', ARGV[3], 'sent', ARGV[2], 'lease', 0)
local ds = redis.call('HGET', KEYS[1], 'ds')
if ds ~= 'sent' and ds ~= 'delivered' then redis.call('HSET', KEYS[1], 'ds', 'sent') end
redis.call('SET', KEYS[2], redis.call('HGET', KEYS[1], 'id') .. ':' .. ARGV[2], 'PX', ARGV[6])
redis.call('HSET', KEYS[3], 'fails', 0, 'openUntil', 0)
local early = redis.call('LRANGE', KEYS[4], 0, -1)
if #early > 0 then redis.call('DEL', KEYS[4]) end
return early
`;

/**
 * Attempt n failed. KEYS: 1 otp, 2 circuit.
 * ARGV: 1 now, 2 n, 3 outcome (retryable | rate_limited | misconfigured | permanent), 4 error code,
 * 5 circuit failure threshold, 6 circuit cool-down ms, 7 pause ms (rate_limited).
 * A permanent failure ends the OTP as failed. Returns the circuit's state: 'open' or 'closed'.
 */
export const FAIL_LUA = `
local now = tonumber(ARGV[1])
local f = 'a' .. ARGV[2]
redis.call('HSET', KEYS[1], f .. '.o', ARGV[3], f .. '.e', ARGV[4], f .. '.u', now, 'lease', 0)
local state = 'closed'
if ARGV[3] == 'rate_limited' then
  redis.call('HSET', KEYS[2], 'pausedUntil', now + tonumber(ARGV[7]))
elseif ARGV[3] == 'retryable' then
  -- Only transport and server failures count against the provider's health: a refusal (auth, sender,
  -- a region not enabled) is skipped for that OTP and does not close the provider for every destination.
  local fails = redis.call('HINCRBY', KEYS[2], 'fails', 1)
  if fails >= tonumber(ARGV[5]) then
    redis.call('HSET', KEYS[2], 'openUntil', now + tonumber(ARGV[6]))
    state = 'open'
  end
end
local st = redis.call('HMGET', KEYS[1], 'status', 'sent')
if ARGV[3] == 'permanent' and st[1] == 'pending' then
  if st[2] then
    -- an earlier message went out: the code may have arrived, that attempt counts again
    redis.call('HSET', KEYS[1], 'acc', st[2])
  else
    redis.call('HSET', KEYS[1], 'status', 'failed', 'ds', 'failed', 'endedAt', now)
    redis.call('HDEL', KEYS[1], 'hash', 'sealed')
  end
end
return state
`;

/**
 * No provider can send it before expiry: the OTP ends failed, unless a message already went out once (then it
 * stays usable, and 0 is returned). KEYS: 1 otp. ARGV: 1 now. Returns 1 when it ended the OTP.
 */
export const GIVE_UP_LUA = `
local o = redis.call('HMGET', KEYS[1], 'status', 'acc', 'sent')
if o[1] ~= 'pending' or (o[2] and o[2] ~= '') then return 0 end
-- A message went out before (its receipt said otherwise, or never came): the code may well have arrived,
-- so the OTP stays usable; the last accepted attempt counts again.
if o[3] then
  redis.call('HSET', KEYS[1], 'acc', o[3])
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'failed', 'ds', 'failed', 'endedAt', ARGV[1])
redis.call('HDEL', KEYS[1], 'hash', 'sealed')
return 1
`;

/**
 * No final delivery report came for attempt n in time. KEYS: 1 otp, 2 circuit of its provider.
 * ARGV: 1 now, 2 n, 3 min life ms. When n is still the attempt that counts, only accepted, and the OTP pending
 * with enough life left: the attempt becomes `no_receipt`, the OTP may be sent through another provider
 * (returns 1), and the provider's health takes a failure.
 */
export const RECEIPT_TIMEOUT_LUA = `
local now = tonumber(ARGV[1])
local f = 'a' .. ARGV[2]
local o = redis.call('HMGET', KEYS[1], 'status', 'exp', 'acc', f .. '.o')
if o[1] ~= 'pending' or o[3] ~= ARGV[2] or o[4] ~= 'accepted' then return 0 end
if tonumber(o[2]) - now < tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], f .. '.o', 'no_receipt', f .. '.u', now, 'acc', '')
redis.call('HINCRBY', KEYS[2], 'fails', 1)
return 1
`;
