import { UNTRACKED_ACCEPTANCE } from '@otp-gateway/core';
import { defineScript } from '../redis/script.js';
import { DELIVERY_LUA } from './attempts.scripts.js';

/**
 * The scripts the sweep runs for the entries of a partition's due set (see sweep.ts), each in the OTP's slot.
 */
export const RECEIPT_TIMEOUT = defineScript({
  name: 'otpReceiptTimeout',
  doc: 'no final receipt for attempt n in time: when it still counts, it becomes no_receipt and a resend is due (after sent, only when resendAfterSent); excused: not the provider failure',
  keys: ['otp', 'number', 'due'],
  args: ['now', 'id', 'attempt', 'minLifeMs', 'sweepAfterMs', 'resendAfterSent'],
  lib: DELIVERY_LUA,
  body: `
local now = clock(A.now)
local n = A.attempt
redis.call('ZREM', K.due, DUE_RECEIPT .. A.id .. ':' .. n)
local o = redis.call('HMGET', K.otp, F.status, F.exp, F.acc, af(n, AF.outcome), af(n, AF.provider), af(n, AF.delivery),
  af(n, AF.providerStatus))
if not o[1] then return {'none'} end
local status = settle(K.otp, K.number, A.id, o[1], o[2], now)
if status ~= 'pending' or o[3] ~= n or o[4] ~= 'accepted' then return {'none'} end
-- Reported sent: a carrier took the message, and many destinations never report further. Accepted under an id
-- its reports never carry (Octopush's answer to a repeated request id, UNTRACKED_ACCEPTANCE): no report could
-- come. Neither is the provider's failure. Resent all the same unless resendAfterSent is off (in doubt, send
-- again: a final report lost on its way is not told apart from one never sent).
local sent = o[6] == 'sent'
local excused = (sent or o[7] == '${UNTRACKED_ACCEPTANCE}') and 1 or 0
if sent and A.resendAfterSent ~= '1' then return {'carrier', 'provider', o[5], 'excused', excused} end
if tonumber(o[2]) - now < tonumber(A.minLifeMs) then return {'none', 'provider', o[5], 'excused', excused} end
redis.call('HSET', K.otp, af(n, AF.outcome), 'no_receipt', af(n, AF.updatedAt), now, F.acc, '')
redis.call('ZADD', K.due, now + tonumber(A.sweepAfterMs), DUE_UNSTARTED .. A.id)
return {'resend', 'provider', o[5], 'excused', excused}
`,
});

/**
 * Sweep of one `s:<id>` entry of the due set: an OTP whose job was listed but never started, whose resend the
 * callbacks app could not queue, or whose attempt the job that started it never settled (that job failed for good
 * or vanished: the sweep queues it again, a no-op while it is alive).
 */
export const SWEEP_UNSTARTED = defineScript({
  name: 'otpSweepUnstarted',
  doc: 'an OTP listed as not started or not settled: queue its job (again), give it up when too late, or drop the entry',
  keys: ['otp', 'number', 'due'],
  args: ['now', 'id', 'minLifeMs', 'sweepAfterMs'],
  lib: DELIVERY_LUA,
  body: `
local now = clock(A.now)
local member = DUE_UNSTARTED .. A.id
local o = redis.call('HMGET', K.otp, F.status, F.exp, F.na, F.acc, F.sendJob)
if not o[1] then redis.call('ZREM', K.due, member); return {'drop'} end
local status = settle(K.otp, K.number, A.id, o[1], o[2], now)
local na = tonumber(o[3] or '0')
-- the job to make sure of: the first send's while no attempt started; the one that started the newest attempt
-- while none is accepted (sending, or failed and parked for a retry); after a non-delivery, the resend's
local after, owned = nil, false
if na == 0 then
  after = 0
elseif not o[4] or o[4] == '' then
  if o[5] then after, owned = tonumber(o[5]), true
  elseif SPENT[redis.call('HGET', K.otp, af(na, AF.outcome))] then after = na end
end
if status ~= 'pending' or not after then redis.call('ZREM', K.due, member); return {'drop'} end
-- near expiry: given up here, unless a job owns it (alive, it gives up itself when no try is worth it any more;
-- dead, the one queued now does at once)
if not owned and tonumber(o[2]) <= now + tonumber(A.minLifeMs) then
  redis.call('ZREM', K.due, member)
  local cc = redis.call('HGET', K.otp, F.cc) or ''
  if give_up(K.otp, K.due, A.id, now) then return {'gave_up', 'failed', 1, 'cc', cc} end
  return {'gave_up', 'failed', 0, 'cc', cc}
end
-- stays listed, further out, in case this job is lost too: an accepted attempt removes the entry
redis.call('ZADD', K.due, now + tonumber(A.sweepAfterMs), member)
if after == 0 then return {'enqueue', 'kind', 'send'} end
return {'enqueue', 'kind', 'resend', 'after', after}
`,
});

/** Sweep of one `c:<id>:<n>` entry: attempt n's provider tells its cost after the send; what its cost job needs. */
export const COST_DUE = defineScript({
  name: 'otpCostDue',
  doc: "attempt n's cost is to be asked of its provider now: its provider, message id, calling code, table cost",
  keys: ['otp', 'due'],
  args: ['now', 'id', 'attempt', 'sweepAfterMs'],
  lib: DELIVERY_LUA,
  body: `
local n = A.attempt
local member = DUE_COST .. A.id .. ':' .. n
local o = redis.call('HMGET', K.otp, af(n, AF.provider), af(n, AF.messageId), F.cc, af(n, AF.cost), af(n, AF.currency))
if not o[2] then
  redis.call('ZREM', K.due, member)
  return {'none'}
end
-- listed again a little later: the sweep removes it once the job is queued (a failure in between retries it)
redis.call('ZADD', K.due, clock(A.now) + tonumber(A.sweepAfterMs), member)
return {'ask', 'provider', o[1], 'messageId', o[2], 'cc', o[3] or '', 'cost', o[4] or '', 'currency', o[5] or ''}
`,
});
