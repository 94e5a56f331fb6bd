import { RECORD_LUA, SWEEP_GRACE_MS } from '../otp/otp.record.js';
import { CLOCK_LUA, defineScript } from '../redis/script.js';

/**
 * The delivery scripts: each runs in one OTP's partition slot (the OTP, its number, the due set) and records
 * one step of its attempts. The provider circuits live in another slot (circuit.ts): what a step means for a
 * provider's health is returned, and the caller tells the circuit in a second step.
 */
/** Lua shared by the delivery scripts (field tables, clock, send data, give-up rule). */
export const DELIVERY_LUA = `${CLOCK_LUA}${RECORD_LUA}
-- What a worker needs to send it (the job carries only the id).
local function send_data(okey, out)
  local d = redis.call('HMGET', okey, F.phone, F.locale, F.sealed, F.exp, F.cc, F.country, F.key, F.test)
  local names = {'phone', 'locale', 'sealed', 'exp', 'cc', 'country', 'keyName', 'test'}
  for i = 1, 8 do out[#out + 1] = names[i]; out[#out + 1] = d[i] or '' end
  return out
end
-- No provider can send it before expiry: it ends failed, unless a message already went out once (the code may
-- well have arrived: it stays usable, and the last accepted attempt counts again). True when it ended it.
local function give_up(okey, due, id, now)
  local o = redis.call('HMGET', okey, F.status, F.acc, F.sent)
  if o[1] ~= 'pending' or (o[2] and o[2] ~= '') then return false end
  if o[3] then
    -- the message that went out counts again, with the delivery status last reported for it (the failed
    -- attempt had set 'sending')
    local d = redis.call('HGET', okey, af(o[3], AF.delivery))
    redis.call('HSET', okey, F.acc, o[3], F.ds, (d and d ~= '') and d or 'sent')
    return false
  end
  redis.call('HSET', okey, F.ds, 'failed')
  end_otp(okey, 'failed', now, nil)
  -- second answer: the failed event was listed (status events on for this OTP), for the caller to publish
  return true, emit(okey, due, id, 'failed', 0, now) ~= nil
end
-- An OTP stays listed (the sweep's safety net) until an attempt is accepted or nothing is left to send: a job that
-- fails for good, before or after it starts an attempt, leaves it listed.
local function unlist(due, id) redis.call('ZREM', due, DUE_UNSTARTED .. id) end
local function stop(due, id, reason)
  unlist(due, id)
  return {'stop', 'reason', reason}
end
-- Records attempt na + 1 through provider p as sending, under a lease (ds: the delivery status now), by the job
-- \`job\` (sendJob: '0' the first send's, n the resend's after attempt n), and answers what the worker sends. It
-- carries the request id of attempt origin when it resumes that one (default: its own).
local function start_attempt(okey, due, id, na, p, ds, now, leaseMs, job, origin)
  na = na + 1
  origin = origin or tostring(na)
  redis.call('HSET', okey, F.na, na, af(na, AF.provider), p, af(na, AF.outcome), 'sending',
    af(na, AF.startedAt), now, af(na, AF.updatedAt), now, af(na, AF.requestAttempt), origin,
    F.lease, now + tonumber(leaseMs), F.sendJob, job)
  -- a new attempt that will count: after a failover the delivery status starts again from sending
  if ds ~= 'sending' then redis.call('HSET', okey, F.ds, 'sending') end
  -- looked at again once the lease is over: by then the job has recorded the outcome (accepted: unlisted) or is
  -- parked for its retry, unless it died for good (killed too often, out of attempts); the sweep then queues it
  redis.call('ZADD', due, now + tonumber(leaseMs) + ${SWEEP_GRACE_MS}, DUE_UNSTARTED .. id)
  return send_data(okey, {'go', 'attempt', na, 'provider', p, 'requestAttempt', origin})
end
-- Outcomes after which a provider is not tried again for this OTP (once per provider).
local SPENT = {misconfigured = true, undelivered = true, failed = true, no_receipt = true}
`;

export const PLAN = defineScript({
  name: 'otpPlan',
  doc: 'a job starts: may the OTP go out, and through which providers, in order? (or resume an interrupted attempt, or start one through a trusted provider)',
  keys: ['otp', 'number', 'due'],
  args: ['now', 'id', 'minLifeMs', 'leaseMs', 'routes', 'trusted', 'job'],
  restArgs: 'order',
  lib: DELIVERY_LUA,
  body: `
local now = clock(A.now)
local o = redis.call('HMGET', K.otp, F.status, F.exp, F.acc, F.na, F.country, F.key, F.ds)
if not o[1] then return stop(K.due, A.id, 'gone') end
-- the route (routes as ';name=p1,p2;'): the API key's own for the number's country ('key|CC'), the key's own
-- default ('key|*'), the country's (SMS_ROUTES, 'CC'), else the default order
local function route(name)
  local _, e = string.find(A.routes, ';' .. name .. '=', 1, true)
  if not e then return nil end
  local r = {}
  local list = string.sub(A.routes, e + 1, string.find(A.routes, ';', e + 1, true) - 1)
  for p in string.gmatch(list, '[^,]+') do r[#r + 1] = p end
  return r
end
local ct, kn = o[5] or '', o[6] or ''
local order = (kn ~= '' and ct ~= '' and route(kn .. '|' .. ct)) or (kn ~= '' and route(kn .. '|*'))
  or (ct ~= '' and route(ct)) or A.order
local status = settle(K.otp, K.number, A.id, o[1], o[2], now)
if status ~= 'pending' then return stop(K.due, A.id, status) end
if o[3] and o[3] ~= '' then return stop(K.due, A.id, 'done') end
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
    if now + tonumber(A.minLifeMs) >= tonumber(o[2]) then return stop(K.due, A.id, 'too_late') end
    -- same provider, same request id: a provider that deduplicates by request id (Octopush) cannot send twice.
    -- The delivery status is left as the interrupted attempt set it.
    return start_attempt(K.otp, K.due, A.id, na, lastP, 'sending', now, A.leaseMs, A.job, last[3] or tostring(na))
  end
end
if now + tonumber(A.minLifeMs) >= tonumber(o[2]) then return stop(K.due, A.id, 'too_late') end
local spent = {}
for i = 1, na do
  local a = redis.call('HMGET', K.otp, af(i, AF.provider), af(i, AF.outcome))
  if SPENT[a[2]] then spent[a[1]] = true end
end
-- after a failure another provider goes first; the same one again only when no other is free
local first, again = {}, {}
for _, p in ipairs(order) do
  if not spent[p] then
    if p == lastP and lastO ~= 'accepted' then again[#again + 1] = p else first[#first + 1] = p end
  end
end
for _, p in ipairs(again) do first[#first + 1] = p end
if #first == 0 then return stop(K.due, A.id, 'exhausted') end
-- the first in order is a provider this worker trusts (circuit.ts: a recent pick found it clear, ',p1,p2,'):
-- start the attempt now, without asking the circuits
if string.find(A.trusted, ',' .. first[1] .. ',', 1, true) then
  return start_attempt(K.otp, K.due, A.id, na, first[1], o[7], now, A.leaseMs, A.job)
end
return {'choose', 'attempts', na, 'candidates', table.concat(first, ','), 'exp', o[2]}
`,
});

export const START = defineScript({
  name: 'otpStartAttempt',
  doc: 'record a new attempt through the picked provider, if nothing moved since the plan',
  keys: ['otp', 'number', 'due'],
  args: ['now', 'id', 'attempts', 'provider', 'leaseMs', 'job'],
  lib: DELIVERY_LUA,
  body: `
local now = clock(A.now)
local o = redis.call('HMGET', K.otp, F.status, F.exp, F.acc, F.na, F.ds)
if not o[1] then return stop(K.due, A.id, 'gone') end
local status = settle(K.otp, K.number, A.id, o[1], o[2], now)
if status ~= 'pending' then return stop(K.due, A.id, status) end
if o[3] and o[3] ~= '' then return stop(K.due, A.id, 'done') end
-- another job of this OTP started an attempt since the plan: plan again shortly
if tonumber(o[4] or '0') ~= tonumber(A.attempts) then return {'busy', 'ms', 100} end
return start_attempt(K.otp, K.due, A.id, tonumber(A.attempts), A.provider, o[5], now, A.leaseMs, A.job)
`,
});

export const ACCEPT = defineScript({
  name: 'otpAccept',
  doc: 'a provider accepted attempt n: it counts now; its receipt is awaited (due set) when receipts are expected; listed=1: publish otp.sent; early: the reports that named it before (one a line)',
  keys: ['otp', 'due'],
  args: [
    'now',
    'id',
    'attempt',
    'provider',
    'messageId',
    'providerStatus',
    'receiptAfterMs',
    'minLifeMs',
    'cost',
    'currency',
    'costAfterMs',
  ],
  lib: DELIVERY_LUA,
  body: `
local now = clock(A.now)
local n = A.attempt
-- a record gone meanwhile (its retention ran out) is not brought back as a partial hash without a TTL
local o = redis.call('HMGET', K.otp, F.ds, F.exp, F.na, F.acc)
if not o[2] then return {'gone'} end
-- reports that named this attempt before its message was recorded (report.script.ts): the worker applies them
-- now. They stay on the record: an acceptance tried again (its answer lost) hands them over again, and applying a
-- report twice changes nothing; none is added once the message is recorded.
local early = redis.call('HGET', K.otp, af(n, AF.early)) or ''
redis.call('HSET', K.otp, af(n, AF.outcome), 'accepted', af(n, AF.messageId), A.messageId,
  af(n, AF.providerStatus), A.providerStatus, af(n, AF.updatedAt), now, F.sent, n)
-- no job needs to look after it any more (the receipt check below does, when it counts)
redis.call('HDEL', K.otp, F.sendJob)
unlist(K.due, A.id)
if A.cost ~= '' then redis.call('HSET', K.otp, af(n, AF.cost), A.cost, af(n, AF.currency), A.currency) end
-- a provider that tells the cost later is asked then (the sweep queues a cost job), in the same step as the send
if tonumber(A.costAfterMs) > 0 then redis.call('ZADD', K.due, now + tonumber(A.costAfterMs), DUE_COST .. A.id .. ':' .. n) end
-- the lease belongs to the newest attempt: a resume of this one may be sending now
if o[3] == n then redis.call('HSET', K.otp, F.lease, 0) end
-- an earlier message was reported delivered while this one was on its way (a late receipt after the resend began):
-- that one keeps counting, and this one needs no receipt check (its report still lands on its attempt)
if o[4] and o[4] ~= '' and o[4] ~= n and o[1] == 'delivered' then return {'ok', 'listed', 0, 'early', early} end
redis.call('HSET', K.otp, F.acc, n, F.provider, A.provider)
if o[1] ~= 'sent' and o[1] ~= 'delivered' then redis.call('HSET', K.otp, F.ds, 'sent') end
-- listed: status events are on for this OTP, and the worker publishes 'sent' (nothing to publish otherwise)
local listed = emit(K.otp, K.due, A.id, 'sent', n, now) and 1 or 0
local due = now + tonumber(A.receiptAfterMs)
-- a receipt check is only worth it when a resend could still arrive in time (a test number's receipts are
-- simulated by the worker: none is awaited, so a provider's circuit never counts a test number's silence)
if tonumber(A.receiptAfterMs) > 0 and tonumber(o[2] or '0') - due > tonumber(A.minLifeMs)
  and not redis.call('HGET', K.otp, F.test) then
  redis.call('ZADD', K.due, due, DUE_RECEIPT .. A.id .. ':' .. n)
end
return {'ok', 'listed', listed, 'early', early}
`,
});

export const COST = defineScript({
  name: 'otpAttemptCost',
  doc: "the provider said what accepted attempt n cost (after its send): it replaces the price table's",
  keys: ['otp'],
  args: ['attempt', 'cost', 'currency'],
  lib: DELIVERY_LUA,
  body: `
local n = A.attempt
-- a record gone meanwhile is not brought back; an attempt never accepted (no message id) has no cost
if redis.call('HGET', K.otp, af(n, AF.messageId)) == false then return {'gone'} end
redis.call('HSET', K.otp, af(n, AF.cost), A.cost, af(n, AF.currency), A.currency)
return {'ok'}
`,
});

export const FAIL = defineScript({
  name: 'otpAttemptFailed',
  doc: 'attempt n failed; a permanent refusal ends the OTP failed unless a message went out before; listed=1: publish otp.failed',
  keys: ['otp', 'due'],
  args: ['now', 'id', 'attempt', 'outcome', 'errorCode'],
  lib: DELIVERY_LUA,
  body: `
local now = clock(A.now)
local n = A.attempt
local na = redis.call('HGET', K.otp, F.na)
if not na then return {'gone'} end
redis.call('HSET', K.otp, af(n, AF.outcome), A.outcome, af(n, AF.errorCode), A.errorCode, af(n, AF.updatedAt), now)
if na == n then redis.call('HSET', K.otp, F.lease, 0) end
if A.outcome == 'permanent' then
  local ended, listed = give_up(K.otp, K.due, A.id, now)
  if ended then return {'ended', 'listed', listed and 1 or 0} end
end
return {'recorded'}
`,
});

export const GIVE_UP = defineScript({
  name: 'otpGiveUp',
  doc: 'no provider can send it before expiry: end it failed, unless a message already went out; listed=1: publish otp.failed',
  keys: ['otp', 'due'],
  args: ['now', 'id'],
  lib: DELIVERY_LUA,
  body: `
local cc = redis.call('HGET', K.otp, F.cc) or ''
local ended, listed = give_up(K.otp, K.due, A.id, clock(A.now))
if ended then return {'ended', 'cc', cc, 'listed', listed and 1 or 0} end
return {'usable', 'cc', cc}
`,
});
