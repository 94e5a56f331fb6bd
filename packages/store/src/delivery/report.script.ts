import { DELIVERY_RANK } from '@otp-gateway/core';
import { defineScript } from '../redis/script.js';
import { DELIVERY_LUA } from './attempts.scripts.js';

/** The delivery ranks of core's DELIVERY_RANK as a Lua table: the script and the domain share one order. */
const RANK_TABLE = `local RANK = {${Object.entries(DELIVERY_RANK)
  .map(([s, r]) => `${s} = ${r}`)
  .join(', ')}}`;

/**
 * Apply one delivery report to attempt n (named by the report's callback, or found through the message index).
 * When the callback named it (`named`) and the attempt's message is not recorded yet (the report beat the worker:
 * the attempt is `sending`, or `interrupted` when its worker stalled past its lease and may still record it), the
 * report is kept on the attempt, the newest `cap`, and the acceptance hands them to the worker (ACCEPT):
 * `deferred`, with `trimmed` 1 when the oldest made room. Each attempt keeps its own last
 * delivery status (`d`, absent: inferred from its outcome) that only moves forward by DELIVERY_RANK; a report that
 * does not move it changes nothing. When it moves: the provider status, the time and the error code are recorded,
 * and the outcome moves from sending/accepted to accepted or to the final outcome (an attempt the worker already
 * settled, e.g. no_receipt, keeps its outcome). When n is the attempt that counts, the OTP's delivery status moves
 * too; a final one left by an earlier attempt (after a failover) is replaced. A late `delivered` of an earlier
 * attempt makes it the one that counts. A new negative outcome on the counting attempt of a pending OTP with life
 * left asks for a resend (listed in the due set until a worker starts it). A report naming a recipient other than
 * the OTP's number (a forged or misrouted one) changes nothing.
 */
export const APPLY_REPORT = defineScript({
  name: 'otpApplyReport',
  doc: 'apply a provider delivery report to attempt n, forward only; say whether to resend, and the event listed to publish',
  keys: ['otp', 'number', 'due'],
  args: [
    'now',
    'id',
    'attempt',
    'status',
    'providerStatus',
    'errorCode',
    'messageId',
    'phoneNumber',
    'minLifeMs',
    'sweepAfterMs',
    'named',
    'report',
    'cap',
  ],
  lib: `${DELIVERY_LUA}${RANK_TABLE}`,
  body: `
local now = clock(A.now)
local n = A.attempt
local o = redis.call('HMGET', K.otp, F.status, F.exp, F.acc, F.ds, af(n, AF.outcome), af(n, AF.messageId),
  af(n, AF.delivery), F.sealed, F.cc, af(n, AF.provider), F.phone)
if not o[1] then return {'ignored', 'reason', 'unknown_otp'} end
if not o[5] or (o[6] and o[6] ~= A.messageId) then return {'ignored', 'reason', 'stale'} end
if not o[6] and A.named == '1' then
  -- the attempt's message is not recorded: kept for the acceptance while one may come, stale otherwise (an
  -- attempt failed without a message: its report is ignored, as one the index never knew)
  if o[5] ~= 'sending' and o[5] ~= 'interrupted' then return {'ignored', 'reason', 'stale'} end
  local field, LF = af(n, AF.early), string.char(10)
  local kept = redis.call('HGET', K.otp, field)
  local trimmed = 0
  if kept and select(2, string.gsub(kept, LF, '')) + 1 >= tonumber(A.cap) then
    kept = string.sub(kept, (string.find(kept, LF, 1, true) or #kept) + 1)
    if kept == '' then kept = nil end
    trimmed = 1
  end
  redis.call('HSET', K.otp, field, kept and (kept .. LF .. A.report) or A.report)
  return {'deferred', 'trimmed', trimmed}
end
-- a report that names a recipient must name this OTP's (with or without the leading +)
if A.phoneNumber ~= '' and string.gsub(A.phoneNumber, '^%+', '') ~= string.gsub(o[11] or '', '^%+', '') then
  return {'ignored', 'reason', 'number_mismatch'}
end
local status = settle(K.otp, K.number, A.id, o[1], o[2], now)
local acc, ds, outcome, cc = o[3], o[4] or 'queued', o[5], o[9] or ''
local prev = o[7]
if not prev or prev == '' then
  if outcome == 'delivered' or outcome == 'undelivered' or outcome == 'failed' then prev = outcome else prev = 'queued' end
end
local prevRank, rank = RANK[prev] or 0, RANK[A.status]
if not rank or rank <= prevRank then return {'applied', 'ds', ds, 'changed', 0, 'cc', cc} end

local sets = {af(n, AF.delivery), A.status, af(n, AF.providerStatus), A.providerStatus, af(n, AF.updatedAt), now}
if A.errorCode ~= '' then sets[#sets + 1] = af(n, AF.errorCode); sets[#sets + 1] = A.errorCode end
local newOutcome = nil
if outcome == 'sending' or outcome == 'accepted' then
  if rank == 3 then newOutcome = A.status elseif outcome == 'sending' then newOutcome = 'accepted' end
end
if newOutcome then sets[#sets + 1] = af(n, AF.outcome); sets[#sets + 1] = newOutcome end
local negative = newOutcome == 'undelivered' or newOutcome == 'failed'
-- a delivered message counts (unless another one is already known delivered: that one keeps counting, and its
-- event is not sent twice)
if A.status == 'delivered' and acc ~= n and not (acc and acc ~= '' and ds == 'delivered') then
  acc = n
  for _, v in ipairs({F.acc, n, F.provider, o[10] or ''}) do sets[#sets + 1] = v end
  ds = 'queued'
end
local resend = 0
local event = nil
if acc == n then
  local dsRank = RANK[ds] or 0
  if rank > dsRank or (dsRank == 3 and prevRank < 3) then
    ds = A.status
    sets[#sets + 1] = F.ds; sets[#sets + 1] = ds
    if rank == 3 then event = ds == 'delivered' and 'delivered' or 'undelivered' end
  end
  if negative and status == 'pending' and o[8] and tonumber(o[2]) - now > tonumber(A.minLifeMs) then
    sets[#sets + 1] = F.acc; sets[#sets + 1] = ''
    resend = 1
    redis.call('ZADD', K.due, now + tonumber(A.sweepAfterMs), DUE_UNSTARTED .. A.id)
  end
end
redis.call('HSET', K.otp, unpack(sets))
-- the event is answered only when listed (status events on for this OTP): the caller publishes nothing otherwise
if event and not emit(K.otp, K.due, A.id, event, n, now) then event = nil end
-- a final status is the receipt the due set waited for: the sweep need not look at this attempt again
if rank == 3 then redis.call('ZREM', K.due, DUE_RECEIPT .. A.id .. ':' .. n) end
return {'applied', 'ds', ds, 'changed', 1, 'cc', cc, 'negative', negative and 1 or 0, 'resend', resend,
  'provider', o[10] or '', 'event', event or ''}
`,
});
