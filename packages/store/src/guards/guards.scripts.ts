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
-- bucket, reading only the buckets that enter or leave them, and answers cur, judged sends, approvals, and whether
-- the sums moved (buckets were deleted). \`v\`: the running sums' fields (convBucket, convJudged, convApproved) when
-- the caller read them already.
local function conv(state, now, bucketMs, buckets, v)
  local cur = math.floor(now / bucketMs)
  v = v or redis.call('HMGET', state, G.convBucket, G.convJudged, G.convApproved)
  local c, sent, ok = tonumber(v[1]), tonumber(v[2] or '0'), tonumber(v[3] or '0')
  if c == cur then return cur, sent, ok, false end
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
  return cur, sent, ok, true
end
-- Keeps a subject's hash at least \`ms\` from \`now\`, and notes until when (a send renews it only when that is near).
local function keep(state, now, ms)
  local ends = now + math.max(redis.call('PTTL', state), ms)
  redis.call('PEXPIRE', state, ends - now)
  redis.call('HSET', state, G.keptUntil, ends)
end
`;

/** GUARD_SEND's settings: the start of its `limits`, in this order (the same for every send of a process). */
export const GUARD_SEND_SETTINGS = [
  'velocityWindowMs',
  'cooldownMs',
  'convMinPercent',
  'convBucketMs',
  'convBuckets',
  'throttleMs',
  'currency',
  'keepMs',
] as const;

/**
 * What follows the settings in GUARD_SEND's `limits`: a tuple per subject, in this order (the tuple width is its
 * length). `take`: how many sends a budget counts at once (a key's lease, see guards.ts), at least this one; 1 elsewhere.
 */
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
  // limits: the settings and the subjects' tuples, comma-separated in one argument: the API encodes each argument
  // of every send, and the script splits one string for less than that costs
  args: ['now', 'limits'],
  restKeys: 'states',
  lib: LIB,
  body: `
local L = {}
for x in string.gmatch(A.limits, '[^,]+') do L[#L + 1] = x end
local S = {${GUARD_SEND_SETTINGS.map((n, i) => `${n} = L[${i + 1}]`).join(', ')}}
local now = clock(A.now)
local day = math.floor(now / DAY)
local dayEndMs = (day + 1) * DAY - now
local money = function(m) return string.format('%.2f %s', m / 1000000, S.currency) end
local bucketMs, buckets, keepMs = tonumber(S.convBucketMs), tonumber(S.convBuckets), tonumber(S.keepMs)
local sendsNow = G.sendsPrefix .. math.floor(now / bucketMs)
-- Each subject costs two calls on the way that lets the send go: one HMGET of all it judges, one HSET of all it
-- counts (Lua's calls into Redis are most of a script's time). First every subject is judged, writing nothing (but a
-- velocity block that starts now); then each is counted.
local plans = {}
for i, state in ipairs(K.states) do
  local o = ${GUARD_SEND_SETTINGS.length} + (i - 1) * ${GUARD_SEND_SUBJECT_ARGS.length}
  local p = {
    state = state,
    vmax = tonumber(L[o + 1]), convMin = tonumber(L[o + 2]), budget = tonumber(L[o + 3]),
    spendBudget = tonumber(L[o + 4]), price = tonumber(L[o + 5]), take = tonumber(L[o + 6]),
    bn = 0, spent = 0,
  }
  local h = redis.call('HMGET', state, G.blockedUntil, G.unverified, G.windowEnd, G.day, G.dayCount, G.daySpend,
    G.throttledUntil, G.convBucket, G.convJudged, G.convApproved, sendsNow, G.keptUntil)
  local blk = tonumber(h[1] or '0')
  if blk > now then
    return {'refused', 'at', i, 'guard', 'velocity', 'ms', blk - now, 'why', redis.call('HGET', state, G.why) or '',
      'started', 0}
  end
  p.kept = tonumber(h[12] or '0')
  -- spend in millionths of the currency: whole numbers
  if p.budget > 0 or p.spendBudget > 0 then
    if tonumber(h[4] or '-1') == day then p.bn, p.spent = tonumber(h[5] or '0'), tonumber(h[6] or '0') end
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
    local _, sent, ok, moved = conv(state, now, bucketMs, buckets, {h[8], h[9], h[10]})
    -- the current bucket's sends, read above (again when the sums moved: a clock moved back may have deleted it)
    p.sendsNow = tonumber((moved and redis.call('HGET', state, sendsNow)) or h[11] or '0')
    if sent >= p.convMin and ok * 100 < sent * tonumber(S.convMinPercent) then
      local why = ok .. ' approved of ' .. sent .. ' codes sent, under ' .. S.convMinPercent .. '%'
      local thr = tonumber(h[7] or '0')
      if thr > now then return {'refused', 'at', i, 'guard', 'conversion', 'ms', thr - now, 'why', why, 'started', 0} end
      -- throttled, not closed: this send goes, the next one after throttleMs, so approvals can bring it back
      p.throttle = why
    end
  end
  if p.vmax > 0 then
    p.vu, p.vend = tonumber(h[2] or '0'), tonumber(h[3] or '0')
    if p.vend <= now then p.vu, p.vend = 0, now + tonumber(S.velocityWindowMs) end
    if p.vu >= p.vmax then
      local why = p.vu .. ' codes sent without a verification after them (limit ' .. p.vmax .. ')'
      local cool = tonumber(S.cooldownMs)
      -- the count starts again after the cool-down: the block is the penalty
      redis.call('HSET', state, G.blockedUntil, now + cool, G.why, why, G.unverified, 0, G.windowEnd, 0)
      keep(state, now, cool + keepMs)
      return {'refused', 'at', i, 'guard', 'velocity', 'ms', cool, 'why', why, 'started', 1}
    end
  end
  plans[i] = p
end
-- every subject lets the send go: count it on each. Notes per subject i: n<i> 'throttled' or 'filled', w<i> why;
-- \`noted\` 1 when there is any (the caller reads them only then)
local out = {'ok', 'dayEndMs', dayEndMs}
local noted = false
for i, p in ipairs(plans) do
  local f = {}
  local function set(field, value) f[#f + 1] = field; f[#f + 1] = value end
  if p.throttle then
    set(G.throttledUntil, now + tonumber(S.throttleMs)); set(G.why, p.throttle)
    out[#out + 1] = 'n' .. i; out[#out + 1] = 'throttled'; out[#out + 1] = 'w' .. i; out[#out + 1] = p.throttle
    noted = true
  end
  if p.vmax > 0 then set(G.unverified, p.vu + 1); set(G.windowEnd, p.vend) end
  if p.budget > 0 or p.spendBudget > 0 then
    set(G.day, day); set(G.dayCount, p.bn + p.take); set(G.daySpend, p.spent + p.price * p.take)
    out[#out + 1] = 't' .. i; out[#out + 1] = p.take
  end
  if p.convMin > 0 then set(sendsNow, p.sendsNow + 1) end
  -- not blocked (a blocked subject refused above): kept the usual time, renewed once half of it has gone
  local renew = p.kept < now + keepMs / 2
  if renew then set(G.keptUntil, now + keepMs) end
  redis.call('HSET', p.state, unpack(f))
  -- after the HSET: a new subject's hash exists only from it
  if renew then redis.call('PEXPIRE', p.state, keepMs) end
  -- the send that fills a budget starts its block (the index lists it until the day ends)
  local filled = nil
  local bn, spent = p.bn + p.take, p.spent + p.price * p.take
  if p.budget > 0 and bn >= p.budget then filled = bn .. ' SMS today, the daily budget is ' .. p.budget
  elseif p.spendBudget > 0 and p.price > 0 and spent + p.price > p.spendBudget then
    -- the next send at this price would pass the budget
    filled = money(spent) .. ' spent today, the daily budget is ' .. money(p.spendBudget)
  end
  if filled then out[#out + 1] = 'f' .. i; out[#out + 1] = filled; noted = true end
end
if noted then out[#out + 1] = 'noted'; out[#out + 1] = 1 end
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
    keep(state, now, tonumber(A.keepMs))
  end
end
return {'ok'}
`,
});
