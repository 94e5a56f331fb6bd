import { CLOCK_LUA, defineScript } from '../redis/script.js';
import { GUARD_LUA } from './guard.record.js';

/**
 * The guards' scripts. Each runs on the subjects of one slot (see guard.record.ts: a country's subjects, or a key's
 * budget), given as KEYS with their limits as a fixed-width tuple per subject in ARGV. A send is checked by one call
 * per slot, all sent at once (one round trip). Within a call, a refusal by any subject counts nothing on any of
 * them; when the other slot's call refused, this one's counts are taken back (UNDO). Limits of 0 switch a guard off
 * for that subject.
 */
const LIB = `${CLOCK_LUA}${GUARD_LUA}
local DAY = 86400000
-- The conversion window of a subject at \`now\`: buckets cur - buckets .. cur, whose sends are judged but the newest
-- bucket's (their codes may still be on their way to being typed). Brings the running sums up to the current
-- bucket, reading only the buckets that enter or leave them, and answers cur, judged sends, approvals.
local function conv(state, now, bucketMs, buckets)
  local cur = math.floor(now / bucketMs)
  local v = redis.call('HMGET', state, G.convBucket, G.convJudged, G.convApproved)
  local c, sent, ok = tonumber(v[1]), tonumber(v[2] or '0'), tonumber(v[3] or '0')
  if c == cur then return cur, sent, ok end
  local S, Ap = G.sendsPrefix, G.approvalsPrefix
  if c == nil or cur < c or cur - c > buckets then
    -- first use, a clock moved back, or a gap longer than the window: sum what the window holds
    local f = {}
    for i = cur - buckets, cur do f[#f + 1] = S .. i; f[#f + 1] = Ap .. i end
    local w = redis.call('HMGET', state, unpack(f))
    sent, ok = 0, 0
    for j = 1, #f, 2 do
      if j < #f - 1 then sent = sent + tonumber(w[j] or '0') end
      ok = ok + tonumber(w[j + 1] or '0')
    end
    if c ~= nil and cur > c then
      local old = {}
      for i = c - buckets, c do old[#old + 1] = S .. i; old[#old + 1] = Ap .. i end
      redis.call('HDEL', state, unpack(old))
    end
  else
    -- buckets c .. cur - 1 become judged; buckets c - buckets .. cur - buckets - 1 leave the window
    local f = {}
    for i = c, cur - 1 do f[#f + 1] = S .. i end
    local joined = #f
    for i = c - buckets, cur - buckets - 1 do f[#f + 1] = S .. i; f[#f + 1] = Ap .. i end
    local w = redis.call('HMGET', state, unpack(f))
    for j = 1, joined do sent = sent + tonumber(w[j] or '0') end
    for j = joined + 1, #f, 2 do
      sent = sent - tonumber(w[j] or '0')
      ok = ok - tonumber(w[j + 1] or '0')
    end
    if #f > joined then redis.call('HDEL', state, unpack(f, joined + 1)) end
  end
  redis.call('HSET', state, G.convBucket, cur, G.convJudged, sent, G.convApproved, ok)
  return cur, sent, ok
end
local function keep(state, ms)
  redis.call('PEXPIRE', state, math.max(redis.call('PTTL', state), ms))
end
`;

/** ARGV per subject of GUARD_SEND, in this order (the tuple width is its length). */
/** `take`: how many sends a budget counts at once (a key's lease, see guards.ts), at least this one; 1 elsewhere. */
export const GUARD_SEND_SUBJECT_ARGS = [
  'velocityMax',
  'convMinSends',
  'budget',
  'spendBudget',
  'price',
  'take',
] as const;

export const GUARD_SEND = defineScript({
  name: 'otpGuardSend',
  doc: 'check the subjects of one slot for a send and count it on each; refuse (counting nothing) when a guard says no',
  keys: [],
  args: [
    'now',
    'velocityWindowMs',
    'cooldownMs',
    'convMinPercent',
    'convBucketMs',
    'convBuckets',
    'throttleMs',
    'currency',
    'keepMs',
  ],
  restKeys: 'states',
  restArgs: 'subjects',
  lib: LIB,
  body: `
local now = clock(A.now)
local day = math.floor(now / DAY)
local dayEndMs = (day + 1) * DAY - now
local money = function(m) return string.format('%.2f %s', m / 1000000, A.currency) end
-- first every subject is judged, writing nothing (but a velocity block that starts now); then each is counted
local plans = {}
for i, state in ipairs(K.states) do
  local o = (i - 1) * ${GUARD_SEND_SUBJECT_ARGS.length}
  local p = {
    state = state,
    vmax = tonumber(A.subjects[o + 1]), convMin = tonumber(A.subjects[o + 2]), budget = tonumber(A.subjects[o + 3]),
    spendBudget = tonumber(A.subjects[o + 4]), price = tonumber(A.subjects[o + 5]), take = tonumber(A.subjects[o + 6]),
    bn = 0, spent = 0,
  }
  local h = redis.call('HMGET', state, G.blockedUntil, G.why, G.unverified, G.windowEnd, G.day, G.dayCount,
    G.throttledUntil, G.daySpend)
  local blk = tonumber(h[1] or '0')
  if blk > now then return {'refused', 'at', i, 'guard', 'velocity', 'ms', blk - now, 'why', h[2] or '', 'started', 0} end
  -- spend in millionths of the currency: whole numbers
  if p.budget > 0 or p.spendBudget > 0 then
    if tonumber(h[5] or '-1') == day then p.bn, p.spent = tonumber(h[6] or '0'), tonumber(h[8] or '0') end
    if p.budget > 0 and p.bn >= p.budget then
      return {'refused', 'at', i, 'guard', 'budget', 'ms', dayEndMs,
        'why', p.bn .. ' SMS today, the daily budget is ' .. p.budget, 'started', 0}
    end
    if p.spendBudget > 0 and p.price > 0 and p.spent + p.price > p.spendBudget then
      return {'refused', 'at', i, 'guard', 'budget', 'ms', dayEndMs,
        'why', money(p.spent) .. ' spent today, the daily budget is ' .. money(p.spendBudget), 'started', 0}
    end
    -- a lease takes what is left, if less than it asks
    if p.budget > 0 then p.take = math.min(p.take, p.budget - p.bn) end
    if p.spendBudget > 0 and p.price > 0 then
      p.take = math.min(p.take, math.floor((p.spendBudget - p.spent) / p.price))
    end
  end
  if p.convMin > 0 then
    local sent, ok
    p.cur, sent, ok = conv(state, now, tonumber(A.convBucketMs), tonumber(A.convBuckets))
    if sent >= p.convMin and ok * 100 < sent * tonumber(A.convMinPercent) then
      local why = ok .. ' approved of ' .. sent .. ' codes sent, under ' .. A.convMinPercent .. '%'
      local thr = tonumber(h[7] or '0')
      if thr > now then return {'refused', 'at', i, 'guard', 'conversion', 'ms', thr - now, 'why', why, 'started', 0} end
      -- throttled, not closed: this send goes, the next one after throttleMs, so approvals can bring it back
      p.throttle = why
    end
  end
  if p.vmax > 0 then
    p.vu, p.vend = tonumber(h[3] or '0'), tonumber(h[4] or '0')
    if p.vend <= now then p.vu, p.vend = 0, now + tonumber(A.velocityWindowMs) end
    if p.vu >= p.vmax then
      local why = p.vu .. ' codes sent without a verification after them (limit ' .. p.vmax .. ')'
      local cool = tonumber(A.cooldownMs)
      -- the count starts again after the cool-down: the block is the penalty
      redis.call('HSET', state, G.blockedUntil, now + cool, G.why, why, G.unverified, 0, G.windowEnd, 0)
      keep(state, cool + tonumber(A.keepMs))
      return {'refused', 'at', i, 'guard', 'velocity', 'ms', cool, 'why', why, 'started', 1}
    end
  end
  plans[i] = p
end
-- every subject lets the send go: count it on each. Notes per subject i: n<i> 'throttled' or 'filled', w<i> why
local out = {'ok', 'dayEndMs', dayEndMs}
for i, p in ipairs(plans) do
  local state = p.state
  if p.throttle then
    redis.call('HSET', state, G.throttledUntil, now + tonumber(A.throttleMs), G.why, p.throttle)
    out[#out + 1] = 'n' .. i; out[#out + 1] = 'throttled'; out[#out + 1] = 'w' .. i; out[#out + 1] = p.throttle
  end
  if p.vmax > 0 then redis.call('HSET', state, G.unverified, p.vu + 1, G.windowEnd, p.vend) end
  if p.budget > 0 or p.spendBudget > 0 then
    redis.call('HSET', state, G.day, day, G.dayCount, p.bn + p.take, G.daySpend, p.spent + p.price * p.take)
    out[#out + 1] = 't' .. i; out[#out + 1] = p.take
  end
  if p.convMin > 0 then redis.call('HINCRBY', state, G.sendsPrefix .. p.cur, 1) end
  -- not blocked (a blocked subject refused above): its keep time is the usual one
  redis.call('PEXPIRE', state, A.keepMs)
  -- the send that fills a budget starts its block (the index lists it until the day ends)
  local filled = nil
  local bn, spent = p.bn + p.take, p.spent + p.price * p.take
  if p.budget > 0 and bn >= p.budget then filled = bn .. ' SMS today, the daily budget is ' .. p.budget
  elseif p.spendBudget > 0 and p.price > 0 and spent + p.price > p.spendBudget then
    -- the next send at this price would pass the budget
    filled = money(spent) .. ' spent today, the daily budget is ' .. money(p.spendBudget)
  end
  if filled then out[#out + 1] = 'f' .. i; out[#out + 1] = filled end
end
return out
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

/** ARGV per subject of GUARD_UNDO: what it counted (flags 1/0) and the price it weighed. */
export const GUARD_UNDO_SUBJECT_ARGS = ['velocity', 'conversion', 'budget', 'price'] as const;

export const GUARD_UNDO = defineScript({
  name: 'otpGuardUndo',
  doc: 'take back the counts of a send on the subjects of one slot: another slot (or a per-number rule) refused it',
  keys: [],
  args: ['now', 'convBucketMs', 'convBuckets'],
  restKeys: 'states',
  restArgs: 'subjects',
  lib: LIB,
  body: `
local now = clock(A.now)
for i, state in ipairs(K.states) do
  local o = (i - 1) * ${GUARD_UNDO_SUBJECT_ARGS.length}
  if redis.call('EXISTS', state) == 1 then
    if A.subjects[o + 1] == '1' then
      local vu = tonumber(redis.call('HGET', state, G.unverified) or '0')
      if vu > 0 then redis.call('HSET', state, G.unverified, vu - 1) end
    end
    if A.subjects[o + 2] == '1' then
      local cur = conv(state, now, tonumber(A.convBucketMs), tonumber(A.convBuckets))
      local f = G.sendsPrefix .. cur
      if tonumber(redis.call('HGET', state, f) or '0') > 0 then redis.call('HINCRBY', state, f, -1) end
    end
    if A.subjects[o + 3] == '1' then
      local d = redis.call('HMGET', state, G.day, G.dayCount, G.daySpend)
      if tonumber(d[1] or '-1') == math.floor(now / DAY) and tonumber(d[2] or '0') > 0 then
        redis.call('HINCRBY', state, G.dayCount, -1)
        local price = tonumber(A.subjects[o + 4])
        if price > 0 and tonumber(d[3] or '0') >= price then redis.call('HINCRBY', state, G.daySpend, -price) end
      end
    end
  end
end
return {'ok'}
`,
});

/** ARGV per subject of GUARD_APPROVED: which of its watches the approval feeds (flags 1/0). */
export const GUARD_APPROVED_SUBJECT_ARGS = ['velocity', 'conversion'] as const;

export const GUARD_APPROVED = defineScript({
  name: 'otpGuardApproved',
  doc: 'a code was approved: on the subjects of one slot, its send is verified (velocity) and converted (conversion)',
  keys: [],
  args: ['now', 'convBucketMs', 'convBuckets', 'keepMs'],
  restKeys: 'states',
  restArgs: 'subjects',
  lib: LIB,
  body: `
local now = clock(A.now)
for i, state in ipairs(K.states) do
  local o = (i - 1) * ${GUARD_APPROVED_SUBJECT_ARGS.length}
  if A.subjects[o + 1] == '1' then
    local v = redis.call('HMGET', state, G.unverified, G.windowEnd)
    if tonumber(v[1] or '0') > 0 and tonumber(v[2] or '0') > now then redis.call('HINCRBY', state, G.unverified, -1) end
  end
  if A.subjects[o + 2] == '1' then
    local cur = conv(state, now, tonumber(A.convBucketMs), tonumber(A.convBuckets))
    redis.call('HINCRBY', state, G.approvalsPrefix .. cur, 1)
    redis.call('HINCRBY', state, G.convApproved, 1)
    keep(state, tonumber(A.keepMs))
  end
end
return {'ok'}
`,
});
