import { LATE_LUA } from './redis-clock.js';

/**
 * Lua scripts for the OTP hot paths: each request is one atomic round trip.
 * Results are flat arrays whose first element names the outcome.
 */

/** Fixed-window counters shared by the scripts: per client IP and per API key, per minute. */
const RATE = `${LATE_LUA}
local function over(key, limit)
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, 60000) end
  if n > tonumber(limit) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then ttl = 60000 end
    return ttl
  end
  return false
end
`;

/**
 * Send. KEYS: 1 ip rate, 2 key rate, 3 idempotency, 4 number failures, 5 cooldown, 6 send window, 7 latest, 8 new otp,
 * 9 unstarted set.
 * ARGV: 1 now, 2 ip limit, 3 key limit, 4 idempotency fingerprint ('' = none), 5 number max failures,
 * 6 cooldown ms, 7 max sends per window, 8 window ms, 9 id, 10 key name, 11 phone, 12 code hash, 13 expires at,
 * 14 max attempts, 15 calling code, 16 locale, 17 retention ms, 18 idempotency ttl ms, 19 response json, 20 prefix,
 * 21 sealed code (AES-GCM, for resends through another provider), 22 deadline (Redis ms, 0 = none).
 */
export const SEND_LUA = `${RATE}
if late(ARGV[22]) then return {'late'} end
local t = over(KEYS[1], ARGV[2]); if t then return {'limited', 'ip', t} end
t = over(KEYS[2], ARGV[3]); if t then return {'limited', 'key', t} end
if ARGV[4] ~= '' then
  local prev = redis.call('HMGET', KEYS[3], 'fp', 'resp')
  if prev[1] then
    if prev[1] == ARGV[4] then return {'replay', prev[2]} end
    return {'conflict'}
  end
end
local fails = tonumber(redis.call('GET', KEYS[4]) or '0')
if fails >= tonumber(ARGV[5]) then return {'limited', 'number_locked', redis.call('PTTL', KEYS[4])} end
local cd = redis.call('PTTL', KEYS[5])
if cd > 0 then return {'limited', 'cooldown', cd} end
local sent = tonumber(redis.call('GET', KEYS[6]) or '0')
if sent >= tonumber(ARGV[7]) then return {'limited', 'number_window', redis.call('PTTL', KEYS[6])} end

local now = tonumber(ARGV[1])
local previous = redis.call('GET', KEYS[7])
if previous then
  local pkey = ARGV[20] .. 'o:' .. previous
  if redis.call('HGET', pkey, 'status') == 'pending' then
    redis.call('HSET', pkey, 'status', 'expired', 'replacedBy', ARGV[9], 'endedAt', now)
    redis.call('HDEL', pkey, 'hash', 'sealed')
  end
end
redis.call('HSET', KEYS[8], 'id', ARGV[9], 'key', ARGV[10], 'phone', ARGV[11], 'hash', ARGV[12],
  'status', 'pending', 'ds', 'queued', 'provider', '', 'exp', ARGV[13], 'created', now,
  'left', ARGV[14], 'max', ARGV[14], 'cc', ARGV[15], 'locale', ARGV[16], 'na', 0, 'sealed', ARGV[21])
local keep = tonumber(ARGV[13]) - now + tonumber(ARGV[17])
redis.call('PEXPIRE', KEYS[8], keep)
redis.call('SET', KEYS[7], ARGV[9], 'PX', keep)
if tonumber(ARGV[6]) > 0 then redis.call('SET', KEYS[5], '1', 'PX', ARGV[6]) end
if redis.call('INCR', KEYS[6]) == 1 then redis.call('PEXPIRE', KEYS[6], ARGV[8]) end
redis.call('ZADD', KEYS[9], now, ARGV[9])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[3], 'fp', ARGV[4], 'resp', ARGV[19])
  redis.call('PEXPIRE', KEYS[3], ARGV[18])
end
return {'ok'}
`;

/**
 * Verify. KEYS: 1 ip rate, 2 key rate, 3 otp, 4 latest (by phone: must still point at the otp).
 * ARGV: 1 now, 2 ip limit, 3 key limit, 4 number max failures, 5 number lock ms, 6 key name,
 * 7 candidate hash, 8 mode ('id' | 'phone'), 9 id, 10 prefix, 11 deadline (Redis ms, 0 = none).
 */
export const VERIFY_LUA = `${RATE}
if late(ARGV[11]) then return {'late'} end
local t = over(KEYS[1], ARGV[2]); if t then return {'limited', 'ip', t} end
t = over(KEYS[2], ARGV[3]); if t then return {'limited', 'key', t} end
if ARGV[8] == 'phone' and redis.call('GET', KEYS[4]) ~= ARGV[9] then return {'stale'} end
local o = redis.call('HMGET', KEYS[3], 'key', 'phone', 'hash', 'status', 'exp', 'left', 'replacedBy', 'cc', 'provider')
local cc, prov = o[8] or '', o[9] or ''
if not o[1] or o[1] ~= ARGV[6] then return {'not_found'} end
local nfkey = ARGV[10] .. 'nf:' .. ARGV[6] .. ':' .. o[2]
local fails = tonumber(redis.call('GET', nfkey) or '0')
if fails >= tonumber(ARGV[4]) then return {'limited', 'number_locked', redis.call('PTTL', nfkey)} end
local now = tonumber(ARGV[1])
local status = o[4]
local justEnded = ''
if status == 'pending' and now >= tonumber(o[5]) then
  status = 'expired'
  justEnded = '1'
  redis.call('HSET', KEYS[3], 'status', 'expired', 'endedAt', now)
  redis.call('HDEL', KEYS[3], 'hash', 'sealed')
end
if status ~= 'pending' then return {status, o[7] or '', cc, prov, justEnded} end

local a, b = o[3], ARGV[7]
local diff = 0
if #a ~= #b then diff = 1 end
for i = 1, math.min(#a, #b) do diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i))) end
if diff == 0 then
  redis.call('HSET', KEYS[3], 'status', 'approved', 'endedAt', now)
  redis.call('HDEL', KEYS[3], 'hash', 'sealed')
  redis.call('DEL', nfkey)
  return {'ok', cc, prov}
end
local left = redis.call('HINCRBY', KEYS[3], 'left', -1)
if redis.call('INCR', nfkey) >= 1 then redis.call('PEXPIRE', nfkey, ARGV[5]) end
if left <= 0 then
  redis.call('HSET', KEYS[3], 'status', 'locked', 'endedAt', now)
  redis.call('HDEL', KEYS[3], 'hash', 'sealed')
  return {'wrong', 'locked', 0, cc, prov}
end
return {'wrong', 'pending', left, cc, prov}
`;

/**
 * Read one OTP's record (by id, or the newest for a number). KEYS: 1 ip rate, 2 key rate, 3 otp or latest.
 * ARGV: 1 ip limit, 2 key limit, 3 mode ('id' | 'phone'), 4 key name, 5 prefix, 6 deadline (Redis ms, 0 = none).
 * Returns {'ok', field, value, ...} without the code hash.
 */
export const READ_LUA = `${RATE}
if late(ARGV[6]) then return {'late'} end
local t = over(KEYS[1], ARGV[1]); if t then return {'limited', 'ip', t} end
t = over(KEYS[2], ARGV[2]); if t then return {'limited', 'key', t} end
local okey = KEYS[3]
if ARGV[3] == 'phone' then
  local id = redis.call('GET', KEYS[3])
  if not id then return {'not_found'} end
  okey = ARGV[5] .. 'o:' .. id
end
if redis.call('HGET', okey, 'key') ~= ARGV[4] then return {'not_found'} end
local all = redis.call('HGETALL', okey)
local out = {'ok'}
for i = 1, #all, 2 do
  if all[i] ~= 'hash' and all[i] ~= 'sealed' then out[#out + 1] = all[i]; out[#out + 1] = all[i + 1] end
end
return out
`;
