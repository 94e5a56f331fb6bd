import { DELIVERY_RANK } from '@otp-gateway/core';

/** The delivery ranks of core's DELIVERY_RANK as a Lua table, so the script and the domain share one order. */
const RANK_TABLE = `local RANK = {${Object.entries(DELIVERY_RANK)
  .map(([s, r]) => `${s} = ${r}`)
  .join(', ')}}`;

/**
 * Apply one provider delivery report, in one atomic round trip.
 *
 * KEYS: 1 message index (`otp:m:{provider}:{messageId}`), 2 early reports list (`otp:cb:{provider}:{messageId}`),
 * 3 the provider's circuit hash.
 * ARGV: 1 now, 2 report JSON (queued when the message is not known yet), 3 delivery status, 4 provider status,
 * 5 error code ('' = none), 6 message id, 7 min life ms an OTP needs for a resend, 8 key prefix,
 * 9 cap of the early list, 10 early list ttl ms.
 *
 * Each attempt keeps its own last delivery status in `a{n}.d` (absent: inferred from `a{n}.o`), which only moves
 * forward by DELIVERY_RANK; a report that does not move it changes nothing. When it moves: `a{n}.s`, `a{n}.u`,
 * `a{n}.e` (when given) are recorded, and the outcome `a{n}.o` moves from sending/accepted to accepted or to the
 * final outcome (an attempt the worker already settled, e.g. `no_receipt`, keeps its outcome). When n is the
 * attempt that counts (`acc`), the OTP's `ds` moves forward too; a final `ds` left by an earlier attempt (after a
 * failover) is replaced by the new attempt's status. A new undelivered/failed outcome adds one to the circuit's
 * `fails`; on the counting attempt of a pending OTP with more than the min life left, it also clears `acc` and
 * asks for a resend.
 *
 * Returns {'deferred'} | {'ignored', reason} |
 * {'applied', otpId, n, ds, changed 0|1, resend 0|1 [, phone, locale, sealed, exp, cc]}.
 */
export const APPLY_REPORT_LUA = `${RANK_TABLE}
local now = tonumber(ARGV[1])
local idx = redis.call('GET', KEYS[1])
if not idx then
  local cap = tonumber(ARGV[9])
  if redis.call('RPUSH', KEYS[2], ARGV[2]) > cap then redis.call('LTRIM', KEYS[2], -cap, -1) end
  redis.call('PEXPIRE', KEYS[2], ARGV[10])
  return {'deferred'}
end
local cut = string.find(idx, ':%d+$')
if not cut then return {'ignored', 'stale'} end
local otpId = string.sub(idx, 1, cut - 1)
local n = string.sub(idx, cut + 1)
local okey = ARGV[8] .. 'o:' .. otpId
local f = 'a' .. n
local o = redis.call('HMGET', okey, 'status', 'exp', 'acc', 'ds', f .. '.o', f .. '.m', f .. '.d',
  'phone', 'locale', 'sealed', 'cc', f .. '.p')
if not o[1] then return {'ignored', 'unknown_otp'} end
if not o[5] then return {'ignored', 'stale'} end
if o[6] and o[6] ~= ARGV[6] then return {'ignored', 'stale'} end

local report, outcome, ds = ARGV[3], o[5], o[4] or 'queued'
local prev = o[7]
if not prev or prev == '' then
  if outcome == 'delivered' or outcome == 'undelivered' or outcome == 'failed' then prev = outcome else prev = 'queued' end
end
local prevRank = RANK[prev] or 0
local rank = RANK[report]
if not rank or rank <= prevRank then return {'applied', otpId, n, ds, 0, 0, o[11] or ''} end

local sets = {f .. '.d', report, f .. '.s', ARGV[4], f .. '.u', now}
if ARGV[5] ~= '' then table.insert(sets, f .. '.e'); table.insert(sets, ARGV[5]) end
local newOutcome = nil
if outcome == 'sending' or outcome == 'accepted' then
  if rank == 3 then newOutcome = report elseif outcome == 'sending' then newOutcome = 'accepted' end
end
if newOutcome then table.insert(sets, f .. '.o'); table.insert(sets, newOutcome) end
local negative = newOutcome == 'undelivered' or newOutcome == 'failed'
if negative then redis.call('HINCRBY', KEYS[3], 'fails', 1) end

local resend = 0
if report == 'delivered' and o[3] ~= n then
  -- An earlier attempt turns out delivered after all (a late receipt): it is the one that counts now.
  o[3] = n
  table.insert(sets, 'acc'); table.insert(sets, n)
  table.insert(sets, 'provider'); table.insert(sets, o[12] or '')
  ds = 'queued'
end
if o[3] == n then
  local dsRank = RANK[ds] or 0
  -- a final ds while this attempt was not final belongs to an earlier attempt (failover): replace it
  if rank > dsRank or (dsRank == 3 and prevRank < 3) then
    ds = report
    table.insert(sets, 'ds'); table.insert(sets, ds)
  end
  if negative and o[1] == 'pending' and o[10] and tonumber(o[2]) - now > tonumber(ARGV[7]) then
    table.insert(sets, 'acc'); table.insert(sets, '')
    resend = 1
    -- listed as not started until a worker begins the resend: if queueing it fails, the sweep queues it
    redis.call('ZADD', ARGV[8] .. 'unstarted', now, otpId)
  end
end
redis.call('HSET', okey, unpack(sets))
if resend == 1 then return {'applied', otpId, n, ds, 1, 1, o[8] or '', o[9] or '', o[10], o[2], o[11] or ''} end
return {'applied', otpId, n, ds, 1, 0, o[11] or ''}
`;
