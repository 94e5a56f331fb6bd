import { CLOCK_LUA, defineScript } from '../redis/script.js';
import { GUARD_LUA } from './guard.record.js';

/**
 * The guards' scripts: each runs on one subject's hash (one slot). A send is checked and counted by one
 * script per subject, all sent at once (one round trip); a subject that refuses counts nothing, and the others
 * are told to take their count back (UNDO). Limits of 0 switch a guard off for that subject.
 */
const LIB = `${CLOCK_LUA}${GUARD_LUA}
local DAY = 86400000
local function conv(state, now, bucketMs, buckets)
  local cur = math.floor(now / bucketMs)
  local f = {}
  for i = cur - buckets, cur do f[#f + 1] = G.sendsPrefix .. i; f[#f + 1] = G.approvalsPrefix .. i end
  local v = redis.call('HMGET', state, unpack(f))
  local sent, ok = 0, 0
  for j = 1, #f, 2 do
    -- sends of the newest bucket are not judged yet: their codes may still be on their way to being typed
    if j < #f - 1 then sent = sent + tonumber(v[j] or '0') end
    ok = ok + tonumber(v[j + 1] or '0')
  end
  return cur, sent, ok
end
`;

export const GUARD_SEND = defineScript({
  name: 'otpGuardSend',
  doc: 'check one subject of the abuse guards for a send and count it; refuse (counting nothing) when a guard says no',
  keys: ['state'],
  args: [
    'now',
    'velocityMax',
    'velocityWindowMs',
    'cooldownMs',
    'convMinSends',
    'convMinPercent',
    'convBucketMs',
    'convBuckets',
    'throttleMs',
    'budget',
    'spendBudget',
    'price',
    'currency',
    'keepMs',
  ],
  lib: LIB,
  body: `
local now = clock(A.now)
local h = redis.call('HMGET', K.state, G.blockedUntil, G.why, G.unverified, G.windowEnd, G.day, G.dayCount, G.throttledUntil,
  G.daySpend)
local blk = tonumber(h[1] or '0')
if blk > now then return {'refused', 'guard', 'velocity', 'ms', blk - now, 'why', h[2] or '', 'started', 0} end
local budget, day, bn = tonumber(A.budget), math.floor(now / DAY), 0
-- spend in millionths of the currency: whole numbers
local spendBudget, price, spent = tonumber(A.spendBudget), tonumber(A.price), 0
local money = function(m) return string.format('%.2f %s', m / 1000000, A.currency) end
if budget > 0 or spendBudget > 0 then
  if tonumber(h[5] or '-1') == day then bn, spent = tonumber(h[6] or '0'), tonumber(h[8] or '0') end
  if budget > 0 and bn >= budget then
    return {'refused', 'guard', 'budget', 'ms', (day + 1) * DAY - now,
      'why', bn .. ' SMS today, the daily budget is ' .. budget, 'started', 0}
  end
  if spendBudget > 0 and price > 0 and spent + price > spendBudget then
    return {'refused', 'guard', 'budget', 'ms', (day + 1) * DAY - now,
      'why', money(spent) .. ' spent today, the daily budget is ' .. money(spendBudget), 'started', 0}
  end
end
local convMin, cur = tonumber(A.convMinSends), nil
local renewed = 0
if convMin > 0 then
  local sent, ok
  cur, sent, ok = conv(K.state, now, tonumber(A.convBucketMs), tonumber(A.convBuckets))
  if sent >= convMin and ok * 100 < sent * tonumber(A.convMinPercent) then
    local why = ok .. ' approved of ' .. sent .. ' codes sent, under ' .. A.convMinPercent .. '%'
    local thr = tonumber(h[7] or '0')
    if thr > now then return {'refused', 'guard', 'conversion', 'ms', thr - now, 'why', why, 'started', 0} end
    -- throttled, not closed: this send goes, the next one after throttleMs, so approvals can bring it back
    redis.call('HSET', K.state, G.throttledUntil, now + tonumber(A.throttleMs), G.why, why)
    renewed = 1
  end
end
local vmax = tonumber(A.velocityMax)
if vmax > 0 then
  local vu, vend = tonumber(h[3] or '0'), tonumber(h[4] or '0')
  if vend <= now then vu, vend = 0, now + tonumber(A.velocityWindowMs) end
  if vu >= vmax then
    local why = vu .. ' codes sent without a verification after them (limit ' .. vmax .. ')'
    local cool = tonumber(A.cooldownMs)
    -- the count starts again after the cool-down: the block is the penalty
    redis.call('HSET', K.state, G.blockedUntil, now + cool, G.why, why, G.unverified, 0, G.windowEnd, 0)
    redis.call('PEXPIRE', K.state, math.max(redis.call('PTTL', K.state), cool + tonumber(A.keepMs)))
    return {'refused', 'guard', 'velocity', 'ms', cool, 'why', why, 'started', 1}
  end
  redis.call('HSET', K.state, G.unverified, vu + 1, G.windowEnd, vend)
end
if budget > 0 or spendBudget > 0 then redis.call('HSET', K.state, G.day, day, G.dayCount, bn + 1, G.daySpend, spent + price) end
if convMin > 0 then
  redis.call('HINCRBY', K.state, G.sendsPrefix .. cur, 1)
  local old = cur - tonumber(A.convBuckets) - 1
  redis.call('HDEL', K.state, G.sendsPrefix .. old, G.approvalsPrefix .. old)
end
redis.call('PEXPIRE', K.state, math.max(redis.call('PTTL', K.state), tonumber(A.keepMs)))
-- the send that fills the budget starts its block (the index lists it until the day ends)
local filled = (budget > 0 and bn + 1 >= budget) and 1 or 0
local why = ''
if renewed == 1 then why = redis.call('HGET', K.state, G.why) end
if filled == 1 then why = (bn + 1) .. ' SMS today, the daily budget is ' .. budget
elseif spendBudget > 0 and price > 0 and spent + 2 * price > spendBudget then
  -- the next send at this price would pass the budget
  filled = 1
  why = money(spent + price) .. ' spent today, the daily budget is ' .. money(spendBudget)
end
return {'ok', 'throttled', renewed, 'filled', filled, 'dayEndMs', (day + 1) * DAY - now, 'why', why}
`,
});

export const GUARD_BLOCKED = defineScript({
  name: 'otpGuardBlocked',
  doc: 'list a block (or renew it) in the index of active blocks, with what the dashboard shows of it',
  keys: ['blocks', 'info'],
  args: ['id', 'endsAt', 'info'],
  body: `
redis.call('ZADD', K.blocks, A.endsAt, A.id)
redis.call('HSET', K.info, A.id, A.info)
return {'ok'}
`,
});

export const GUARD_UNDO = defineScript({
  name: 'otpGuardUndo',
  doc: 'take back the count of a send that another subject (or a per-number rule) refused',
  keys: ['state'],
  args: ['now', 'velocity', 'convBucketMs', 'budget', 'price'],
  lib: LIB,
  body: `
local now = clock(A.now)
if redis.call('EXISTS', K.state) == 0 then return {'gone'} end
if A.velocity == '1' then
  local vu = tonumber(redis.call('HGET', K.state, G.unverified) or '0')
  if vu > 0 then redis.call('HSET', K.state, G.unverified, vu - 1) end
end
if A.budget == '1' then
  local d = redis.call('HMGET', K.state, G.day, G.dayCount, G.daySpend)
  if tonumber(d[1] or '-1') == math.floor(now / DAY) and tonumber(d[2] or '0') > 0 then
    redis.call('HINCRBY', K.state, G.dayCount, -1)
    local price = tonumber(A.price)
    if price > 0 and tonumber(d[3] or '0') >= price then redis.call('HINCRBY', K.state, G.daySpend, -price) end
  end
end
if tonumber(A.convBucketMs) > 0 then
  local f = G.sendsPrefix .. math.floor(now / tonumber(A.convBucketMs))
  if tonumber(redis.call('HGET', K.state, f) or '0') > 0 then redis.call('HINCRBY', K.state, f, -1) end
end
return {'ok'}
`,
});

export const GUARD_APPROVED = defineScript({
  name: 'otpGuardApproved',
  doc: 'a code was approved: the send it followed is verified (velocity) and converted (conversion watch)',
  keys: ['state'],
  args: ['now', 'velocity', 'convBucketMs', 'keepMs'],
  lib: LIB,
  body: `
local now = clock(A.now)
if A.velocity == '1' then
  local v = redis.call('HMGET', K.state, G.unverified, G.windowEnd)
  if tonumber(v[1] or '0') > 0 and tonumber(v[2] or '0') > now then redis.call('HINCRBY', K.state, G.unverified, -1) end
end
if tonumber(A.convBucketMs) > 0 then
  redis.call('HINCRBY', K.state, G.approvalsPrefix .. math.floor(now / tonumber(A.convBucketMs)), 1)
  redis.call('PEXPIRE', K.state, math.max(redis.call('PTTL', K.state), tonumber(A.keepMs)))
end
return {'ok'}
`,
});
