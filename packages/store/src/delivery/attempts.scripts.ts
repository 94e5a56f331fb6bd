import { DELIVERY_RANK } from '@otp-gateway/core';
import { RECORD_LUA } from '../otp/otp.record.js';
import { CLOCK_LUA, defineScript } from '../redis/script.js';

/**
 * The delivery scripts: each runs in one OTP's partition slot (the OTP, its number, the due set) and records
 * one step of its attempts. The provider circuits live in another slot (circuit.ts): what a step means for a
 * provider's health is returned, and the caller tells the circuit in a second step.
 */
const LIB = `${CLOCK_LUA}${RECORD_LUA}
-- What a worker needs to send it (the job carries only the id).
local function send_data(okey, out)
  local d = redis.call('HMGET', okey, F.phone, F.locale, F.sealed, F.exp, F.cc)
  local names = {'phone', 'locale', 'sealed', 'exp', 'cc'}
  for i = 1, 5 do out[#out + 1] = names[i]; out[#out + 1] = d[i] or '' end
  return out
end
-- No provider can send it before expiry: it ends failed, unless a message already went out once (the code may
-- well have arrived: it stays usable, and the last accepted attempt counts again). True when it ended it.
local function give_up(okey, now)
  local o = redis.call('HMGET', okey, F.status, F.acc, F.sent)
  if o[1] ~= 'pending' or (o[2] and o[2] ~= '') then return false end
  if o[3] then redis.call('HSET', okey, F.acc, o[3]); return false end
  redis.call('HSET', okey, F.ds, 'failed')
  end_otp(okey, 'failed', now, nil)
  return true
end
-- Outcomes after which a provider is not tried again for this OTP (once per provider).
local SPENT = {misconfigured = true, undelivered = true, failed = true, no_receipt = true}
`;

export const PLAN = defineScript({
  name: 'otpPlan',
  doc: 'a job starts: may the OTP go out, and through which providers, in order? (or resume an interrupted attempt)',
  keys: ['otp', 'number', 'due'],
  args: ['now', 'id', 'minLifeMs', 'leaseMs'],
  restArgs: 'order',
  lib: LIB,
  body: `
local now = clock(A.now)
redis.call('ZREM', K.due, DUE_UNSTARTED .. A.id)
local o = redis.call('HMGET', K.otp, F.status, F.exp, F.acc, F.na)
if not o[1] then return {'stop', 'reason', 'gone'} end
local status = settle(K.otp, K.number, A.id, o[1], o[2], now)
if status ~= 'pending' then return {'stop', 'reason', status} end
if o[3] and o[3] ~= '' then return {'stop', 'reason', 'done'} end
local na = tonumber(o[4] or '0')
local lastP, lastO = nil, nil
if na > 0 then
  local last = redis.call('HMGET', K.otp, af(na, AF.provider), af(na, AF.outcome), af(na, AF.requestAttempt))
  lastP, lastO = last[1], last[2]
  if lastO == 'sending' then
    -- another job of this OTP is sending now (its lease runs): wait for its outcome
    local lease = tonumber(redis.call('HGET', K.otp, F.lease) or '0')
    if lease > now then return {'busy', 'ms', lease - now} end
    -- the worker that held the lease died during the call: whether it went out is unknown
    redis.call('HSET', K.otp, af(na, AF.outcome), 'interrupted', af(na, AF.updatedAt), now)
    if now + tonumber(A.minLifeMs) >= tonumber(o[2]) then return {'stop', 'reason', 'too_late'} end
    -- same provider, same request id: a provider that deduplicates by request id (Octopush) cannot send twice
    local origin = last[3] or tostring(na)
    na = na + 1
    redis.call('HSET', K.otp, F.na, na, af(na, AF.provider), lastP, af(na, AF.outcome), 'sending',
      af(na, AF.startedAt), now, af(na, AF.updatedAt), now, af(na, AF.requestAttempt), origin,
      F.lease, now + tonumber(A.leaseMs))
    return send_data(K.otp, {'go', 'attempt', na, 'provider', lastP, 'requestAttempt', origin})
  end
end
if now + tonumber(A.minLifeMs) >= tonumber(o[2]) then return {'stop', 'reason', 'too_late'} end
local spent = {}
for i = 1, na do
  local a = redis.call('HMGET', K.otp, af(i, AF.provider), af(i, AF.outcome))
  if SPENT[a[2]] then spent[a[1]] = true end
end
-- after a failure another provider goes first; the same one again only when no other is free
local first, again = {}, {}
for _, p in ipairs(A.order) do
  if not spent[p] then
    if p == lastP and lastO ~= 'accepted' then again[#again + 1] = p else first[#first + 1] = p end
  end
end
for _, p in ipairs(again) do first[#first + 1] = p end
if #first == 0 then return {'stop', 'reason', 'exhausted'} end
return {'choose', 'attempts', na, 'candidates', table.concat(first, ','), 'exp', o[2]}
`,
});

export const START = defineScript({
  name: 'otpStartAttempt',
  doc: 'record a new attempt through the picked provider, if nothing moved since the plan',
  keys: ['otp', 'number'],
  args: ['now', 'id', 'attempts', 'provider', 'leaseMs'],
  lib: LIB,
  body: `
local now = clock(A.now)
local o = redis.call('HMGET', K.otp, F.status, F.exp, F.acc, F.na, F.ds)
if not o[1] then return {'stop', 'reason', 'gone'} end
local status = settle(K.otp, K.number, A.id, o[1], o[2], now)
if status ~= 'pending' then return {'stop', 'reason', status} end
if o[3] and o[3] ~= '' then return {'stop', 'reason', 'done'} end
-- another job of this OTP started an attempt since the plan: plan again shortly
if tonumber(o[4] or '0') ~= tonumber(A.attempts) then return {'busy', 'ms', 100} end
local na = tonumber(A.attempts) + 1
redis.call('HSET', K.otp, F.na, na, af(na, AF.provider), A.provider, af(na, AF.outcome), 'sending',
  af(na, AF.startedAt), now, af(na, AF.updatedAt), now, af(na, AF.requestAttempt), na, F.lease, now + tonumber(A.leaseMs))
-- a new attempt that will count: after a failover the delivery status starts again from sending
if o[5] ~= 'sending' then redis.call('HSET', K.otp, F.ds, 'sending') end
return send_data(K.otp, {'go', 'attempt', na, 'provider', A.provider, 'requestAttempt', na})
`,
});

export const ACCEPT = defineScript({
  name: 'otpAccept',
  doc: 'a provider accepted attempt n: it counts now; its receipt is awaited (due set) when receipts are expected',
  keys: ['otp', 'due'],
  args: ['now', 'id', 'attempt', 'provider', 'messageId', 'providerStatus', 'receiptAfterMs', 'minLifeMs'],
  lib: LIB,
  body: `
local now = clock(A.now)
local n = A.attempt
redis.call('HSET', K.otp, af(n, AF.outcome), 'accepted', af(n, AF.messageId), A.messageId,
  af(n, AF.providerStatus), A.providerStatus, af(n, AF.updatedAt), now,
  F.acc, n, F.provider, A.provider, F.sent, n, F.lease, 0)
local o = redis.call('HMGET', K.otp, F.ds, F.exp)
if o[1] ~= 'sent' and o[1] ~= 'delivered' then redis.call('HSET', K.otp, F.ds, 'sent') end
local due = now + tonumber(A.receiptAfterMs)
-- a receipt check is only worth it when a resend could still arrive in time
if tonumber(A.receiptAfterMs) > 0 and tonumber(o[2] or '0') - due > tonumber(A.minLifeMs) then
  redis.call('ZADD', K.due, due, DUE_RECEIPT .. A.id .. ':' .. n)
end
return {'ok'}
`,
});

export const FAIL = defineScript({
  name: 'otpAttemptFailed',
  doc: 'attempt n failed; a permanent refusal ends the OTP failed unless a message went out before',
  keys: ['otp'],
  args: ['now', 'attempt', 'outcome', 'errorCode'],
  lib: LIB,
  body: `
local now = clock(A.now)
local n = A.attempt
redis.call('HSET', K.otp, af(n, AF.outcome), A.outcome, af(n, AF.errorCode), A.errorCode, af(n, AF.updatedAt), now,
  F.lease, 0)
if A.outcome == 'permanent' and give_up(K.otp, now) then return {'ended'} end
return {'recorded'}
`,
});

export const GIVE_UP = defineScript({
  name: 'otpGiveUp',
  doc: 'no provider can send it before expiry: end it failed, unless a message already went out',
  keys: ['otp'],
  args: ['now'],
  lib: LIB,
  body: `
local cc = redis.call('HGET', K.otp, F.cc) or ''
if give_up(K.otp, clock(A.now)) then return {'ended', 'cc', cc} end
return {'usable', 'cc', cc}
`,
});

export const RECEIPT_TIMEOUT = defineScript({
  name: 'otpReceiptTimeout',
  doc: 'no final receipt for attempt n in time: when it still counts, it becomes no_receipt and a resend is due',
  keys: ['otp', 'number', 'due'],
  args: ['now', 'id', 'attempt', 'minLifeMs', 'sweepAfterMs'],
  lib: LIB,
  body: `
local now = clock(A.now)
local n = A.attempt
redis.call('ZREM', K.due, DUE_RECEIPT .. A.id .. ':' .. n)
local o = redis.call('HMGET', K.otp, F.status, F.exp, F.acc, af(n, AF.outcome), af(n, AF.provider))
if not o[1] then return {'none'} end
local status = settle(K.otp, K.number, A.id, o[1], o[2], now)
if status ~= 'pending' or o[3] ~= n or o[4] ~= 'accepted' then return {'none'} end
if tonumber(o[2]) - now < tonumber(A.minLifeMs) then return {'none'} end
redis.call('HSET', K.otp, af(n, AF.outcome), 'no_receipt', af(n, AF.updatedAt), now, F.acc, '')
redis.call('ZADD', K.due, now + tonumber(A.sweepAfterMs), DUE_UNSTARTED .. A.id)
return {'resend', 'provider', o[5]}
`,
});

/** Sweep of one `s:<id>` entry of the due set: the job of that OTP was listed but never started. */
export const SWEEP_UNSTARTED = defineScript({
  name: 'otpSweepUnstarted',
  doc: 'an OTP listed as not started: queue its job again, give it up when too late, or drop the entry',
  keys: ['otp', 'number', 'due'],
  args: ['now', 'id', 'minLifeMs', 'sweepAfterMs'],
  lib: LIB,
  body: `
local now = clock(A.now)
local member = DUE_UNSTARTED .. A.id
local o = redis.call('HMGET', K.otp, F.status, F.exp, F.na, F.acc)
if not o[1] then redis.call('ZREM', K.due, member); return {'drop'} end
local status = settle(K.otp, K.number, A.id, o[1], o[2], now)
local na = tonumber(o[3] or '0')
local waiting = na == 0
if not waiting then
  local last = redis.call('HGET', K.otp, af(na, AF.outcome))
  waiting = (not o[4] or o[4] == '') and SPENT[last] == true
end
if status ~= 'pending' or not waiting then redis.call('ZREM', K.due, member); return {'drop'} end
if tonumber(o[2]) <= now + tonumber(A.minLifeMs) then
  redis.call('ZREM', K.due, member)
  local cc = redis.call('HGET', K.otp, F.cc) or ''
  if give_up(K.otp, now) then return {'gave_up', 'failed', 1, 'cc', cc} end
  return {'gave_up', 'failed', 0, 'cc', cc}
end
-- stays listed, further out, in case this job is lost too: the job's start removes the entry
redis.call('ZADD', K.due, now + tonumber(A.sweepAfterMs), member)
if na == 0 then return {'enqueue', 'kind', 'send'} end
return {'enqueue', 'kind', 'resend', 'after', na}
`,
});

/** The delivery ranks of core's DELIVERY_RANK as a Lua table: the script and the domain share one order. */
const RANK_TABLE = `local RANK = {${Object.entries(DELIVERY_RANK)
  .map(([s, r]) => `${s} = ${r}`)
  .join(', ')}}`;

/**
 * Apply one delivery report to attempt n (found through the message index). Each attempt keeps its own last
 * delivery status (`d`, absent: inferred from its outcome) that only moves forward by DELIVERY_RANK; a report that
 * does not move it changes nothing. When it moves: the provider status, the time and the error code are recorded,
 * and the outcome moves from sending/accepted to accepted or to the final outcome (an attempt the worker already
 * settled, e.g. no_receipt, keeps its outcome). When n is the attempt that counts, the OTP's delivery status moves
 * too; a final one left by an earlier attempt (after a failover) is replaced. A late `delivered` of an earlier
 * attempt makes it the one that counts. A new negative outcome on the counting attempt of a pending OTP with life
 * left asks for a resend (listed in the due set until a worker starts it).
 */
export const APPLY_REPORT = defineScript({
  name: 'otpApplyReport',
  doc: 'apply a provider delivery report to attempt n, forward only; say whether to resend',
  keys: ['otp', 'number', 'due'],
  args: ['now', 'id', 'attempt', 'status', 'providerStatus', 'errorCode', 'messageId', 'minLifeMs', 'sweepAfterMs'],
  lib: `${LIB}${RANK_TABLE}`,
  body: `
local now = clock(A.now)
local n = A.attempt
local o = redis.call('HMGET', K.otp, F.status, F.exp, F.acc, F.ds, af(n, AF.outcome), af(n, AF.messageId),
  af(n, AF.delivery), F.sealed, F.cc, af(n, AF.provider))
if not o[1] then return {'ignored', 'reason', 'unknown_otp'} end
if not o[5] or (o[6] and o[6] ~= A.messageId) then return {'ignored', 'reason', 'stale'} end
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
if A.status == 'delivered' and acc ~= n then
  acc = n
  for _, v in ipairs({F.acc, n, F.provider, o[10] or ''}) do sets[#sets + 1] = v end
  ds = 'queued'
end
local resend = 0
if acc == n then
  local dsRank = RANK[ds] or 0
  if rank > dsRank or (dsRank == 3 and prevRank < 3) then
    ds = A.status
    sets[#sets + 1] = F.ds; sets[#sets + 1] = ds
  end
  if negative and status == 'pending' and o[8] and tonumber(o[2]) - now > tonumber(A.minLifeMs) then
    sets[#sets + 1] = F.acc; sets[#sets + 1] = ''
    resend = 1
    redis.call('ZADD', K.due, now + tonumber(A.sweepAfterMs), DUE_UNSTARTED .. A.id)
  end
end
redis.call('HSET', K.otp, unpack(sets))
return {'applied', 'ds', ds, 'changed', 1, 'cc', cc, 'negative', negative and 1 or 0, 'resend', resend,
  'provider', o[10] or ''}
`,
});
