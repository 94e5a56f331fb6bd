import { LATE_LUA } from '../redis/clock.js';
import { CLOCK_LUA, defineScript } from '../redis/script.js';
import { RECORD_LUA } from './otp.record.js';

/**
 * The OTP scripts of the request path. Each runs in the OTP's partition slot (the OTP, its number, the due set)
 * and is the one atomic step that decides: the per-number rules (lockout, cooldown, window), replacing the
 * pending code (the number's current OTP moves; older ones read as expired), creating the OTP,
 * approve-at-most-once. `deadline` (Redis ms, 0 = none): a script run later than that (Redis hung, then woke up
 * after we answered 503) changes nothing. `now` is 0 (the node's TIME) except in tests that move time.
 */
const LIB = `${LATE_LUA}${CLOCK_LUA}${RECORD_LUA}`;

export const CREATE = defineScript({
  name: 'otpCreate',
  doc: 'create an OTP under its id unless a per-number rule refuses; it becomes its number current OTP',
  keys: ['otp', 'number', 'due'],
  args: [
    'now',
    'deadline',
    'id',
    'keyName',
    'phone',
    'hash',
    'sealed',
    'ttlMs',
    'maxAttempts',
    'cc',
    'country',
    'locale',
    'retentionMs',
    'maxFailures',
    'cooldownMs',
    'maxSends',
    'windowMs',
    'sweepAfterMs',
    'meta',
    'events',
    'test',
    'codeLength',
  ],
  lib: LIB,
  body: `
if late(A.deadline) then return {'late'} end
local now = clock(A.now)
if redis.call('EXISTS', K.otp) == 1 then return {'exists'} end
local nr = redis.call('HMGET', K.number, NF.failures, NF.failuresUntil, NF.cooldownUntil, NF.windowSends, NF.windowUntil)
local fails, failsUntil = tonumber(nr[1] or '0'), tonumber(nr[2] or '0')
if failsUntil > now and fails >= tonumber(A.maxFailures) then
  return {'limited', 'scope', 'number_locked', 'ms', failsUntil - now}
end
local cooldownUntil = tonumber(nr[3] or '0')
if cooldownUntil > now then return {'limited', 'scope', 'cooldown', 'ms', cooldownUntil - now} end
local sends, windowUntil = tonumber(nr[4] or '0'), tonumber(nr[5] or '0')
if windowUntil <= now then sends, windowUntil = 0, now + tonumber(A.windowMs) end
if sends >= tonumber(A.maxSends) then return {'limited', 'scope', 'number_window', 'ms', windowUntil - now} end

local exp = now + tonumber(A.ttlMs)
redis.call('HSET', K.otp, F.key, A.keyName, F.phone, A.phone, F.hash, A.hash, F.sealed, A.sealed,
  F.status, 'pending', F.ds, 'queued', F.exp, exp, F.created, now, F.left, A.maxAttempts, F.cc, A.cc,
  F.country, A.country, F.locale, A.locale)
if A.meta ~= '' then redis.call('HSET', K.otp, F.meta, A.meta) end
if A.test ~= '' then redis.call('HSET', K.otp, F.test, A.test) end
if A.codeLength ~= '' then redis.call('HSET', K.otp, F.codeLength, A.codeLength) end
-- status events: the sweep looks at it when it expires (otp.expired needs no verify to be noticed)
if A.events == '1' then
  redis.call('HSET', K.otp, F.events, '1')
  redis.call('ZADD', K.due, exp, DUE_EXPIRY .. A.id)
end
local keep = exp - now + tonumber(A.retentionMs)
redis.call('PEXPIRE', K.otp, keep)
redis.call('HSET', K.number, NF.current, A.id, NF.windowSends, sends + 1, NF.windowUntil, windowUntil)
if tonumber(A.cooldownMs) > 0 then redis.call('HSET', K.number, NF.cooldownUntil, now + tonumber(A.cooldownMs)) end
-- the number's record outlives its current OTP's record, its window and its lockout
redis.call('PEXPIRE', K.number, math.max(keep, windowUntil - now, failsUntil - now, redis.call('PTTL', K.number)))
-- listed until a worker starts its job: the sweep queues the job if the API's add never happened
redis.call('ZADD', K.due, now + tonumber(A.sweepAfterMs), DUE_UNSTARTED .. A.id)
return {'created', 'exp', exp}
`,
});

export const VERIFY = defineScript({
  name: 'otpVerify',
  doc: 'check a code: approve at most once, count a wrong code, lock after the last attempt; listed=1: publish the event',
  keys: ['otp', 'number', 'due'],
  args: ['now', 'deadline', 'keyName', 'candidate', 'mode', 'id', 'maxFailures', 'lockMs', 'length', 'keyLength'],
  lib: LIB,
  body: `
if late(A.deadline) then return {'late'} end
local now = clock(A.now)
-- by phone number: the number's current OTP must still be this one (a resend in between: the caller retries)
if A.mode == 'phone' and redis.call('HGET', K.number, NF.current) ~= A.id then return {'stale'} end
local o = redis.call('HMGET', K.otp, F.key, F.hash, F.status, F.exp, F.replacedBy, F.cc, F.provider, F.codeLength)
if not o[1] or o[1] ~= A.keyName then return {'not_found'} end
-- a code of another length than this OTP's (its key's setting when it was sent; the key's current one on older
-- records) is malformed: refused, nothing counted (length 0: not checked)
local want = tonumber(o[8] or A.keyLength)
if tonumber(A.length) > 0 and want and tonumber(A.length) ~= want then return {'bad_format', 'length', want} end
local nr = redis.call('HMGET', K.number, NF.failures, NF.failuresUntil)
local fails, failsUntil = tonumber(nr[1] or '0'), tonumber(nr[2] or '0')
if failsUntil <= now then fails = 0 end
if fails >= tonumber(A.maxFailures) then return {'limited', 'scope', 'number_locked', 'ms', failsUntil - now} end
local cc, provider = o[6] or '', o[7] or ''
local status, justEnded = settle(K.otp, K.number, A.id, o[3], o[4], now)
if status ~= 'pending' then
  local replacedBy = o[5] or redis.call('HGET', K.otp, F.replacedBy) or ''
  return {'ended', 'status', status, 'replacedBy', replacedBy, 'justEnded', justEnded and 1 or 0,
    'cc', cc, 'provider', provider}
end

-- constant time over the stored hash
local a, b = o[2], A.candidate
local diff = 0
if #a ~= #b then diff = 1 end
for i = 1, math.min(#a, #b) do diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i))) end
if diff == 0 then
  end_otp(K.otp, 'approved', now, nil)
  redis.call('HDEL', K.number, NF.failures, NF.failuresUntil)
  -- listed: status events are on for this OTP, and the caller publishes the event (nothing to publish otherwise)
  local listed = emit(K.otp, K.due, A.id, 'approved', 0, now) and 1 or 0
  -- the number and its country: the abuse guards count the approval (not a test number's: it was never sent)
  local who = redis.call('HMGET', K.otp, F.phone, F.country, F.test)
  return {'approved', 'cc', cc, 'provider', provider, 'phone', who[1] or '', 'country', who[2] or '',
    'listed', listed, 'test', who[3] and 1 or 0}
end
local left = redis.call('HINCRBY', K.otp, F.left, -1)
-- A fixed window, never a sliding one: the first wrong code of a window opens it for lockMs, later ones do not
-- move it; the wrong code that reaches the limit locks the number for lockMs from then, and a locked number's
-- verifies are refused above without being counted. So a lockout ends lockMs after it began, whatever comes.
fails = fails + 1
if fails == 1 or fails >= tonumber(A.maxFailures) then failsUntil = now + tonumber(A.lockMs) end
redis.call('HSET', K.number, NF.failures, fails, NF.failuresUntil, failsUntil)
if redis.call('PTTL', K.number) < failsUntil - now then redis.call('PEXPIRE', K.number, failsUntil - now) end
if left <= 0 then
  end_otp(K.otp, 'locked', now, nil)
  local listed = emit(K.otp, K.due, A.id, 'locked', 0, now) and 1 or 0
  return {'wrong', 'status', 'locked', 'left', 0, 'cc', cc, 'provider', provider, 'listed', listed}
end
-- what the caller may still try: this OTP's attempts, or fewer when the number's lockout comes first (0: the
-- number is locked now, even the right code is refused until the lock ends)
return {'wrong', 'status', 'pending', 'left', math.min(left, tonumber(A.maxFailures) - fails), 'cc', cc,
  'provider', provider}
`,
});

export const READ = defineScript({
  name: 'otpRead',
  doc: 'read one OTP record for its API key, without the code hash or the sealed code',
  keys: ['otp', 'number'],
  args: ['now', 'deadline', 'keyName', 'mode', 'id'],
  lib: LIB,
  body: `
if late(A.deadline) then return {'late'} end
local now = clock(A.now)
if A.mode == 'phone' and redis.call('HGET', K.number, NF.current) ~= A.id then return {'stale'} end
local o = redis.call('HMGET', K.otp, F.key, F.status, F.exp)
if not o[1] or o[1] ~= A.keyName then return {'not_found'} end
settle(K.otp, K.number, A.id, o[2], o[3], now)
local all = redis.call('HGETALL', K.otp)
local out = {'found', 'now', now}
for i = 1, #all, 2 do
  if all[i] ~= F.hash and all[i] ~= F.sealed then out[#out + 1] = 'f.' .. all[i]; out[#out + 1] = all[i + 1] end
end
return out
`,
});
