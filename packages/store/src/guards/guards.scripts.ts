import { LATE_LUA } from '../redis/clock.js';
import { CLOCK_LUA, defineScript } from '../redis/script.js';
import { GUARD_LUA } from './guard.record.js';

/**
 * The guards' scripts. Each runs on the subjects of one slot (see guard.record.ts: a country's subjects, or a key's
 * budget), given as KEYS with their limits as a fixed-width tuple per subject. A send is checked by one call per
 * slot, all sent at once (one round trip), and GUARD_SEND takes every send that reached an API process's guards in
 * one turn of its event loop. Within a call, a refusal by any subject counts nothing on any of a send's subjects;
 * when the other slot's call refused it, this one's counts are taken back (UNDO). Limits of 0 switch a guard off
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
-- Keeps a subject's hash at least \`ms\` from \`now\`, and notes until when (a send renews it only when less than
-- keepMs is left).
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
 * A subject's tuple in GUARD_SEND's `limits`, in this order (the tuple width is its length). `take`: how many sends a
 * budget counts at once (a key's lease, see guards.ts), at least this one; 1 elsewhere.
 */
export const GUARD_SEND_SUBJECT_ARGS = [
  'velocityMax',
  'convMinSends',
  'budget',
  'spendBudget',
  'price',
  'take',
] as const;

/**
 * One call checks the sends of one slot that an API process received in one turn of its event loop (a micro-batch),
 * each as if alone and in their order: a send sees the counts of those before it. Each subject hash is read once
 * (one HMGET) and written once (one HSET) whatever the number of sends: a script's calls into Redis are most of its
 * time, and the sends of one country share its two country subjects.
 *
 * `limits`, comma-separated in one argument (the API encodes each argument of every call, the script splits one
 * string for less): GUARD_SEND_SETTINGS, then per send: how many subjects it has, their indexes in KEYS, and their
 * tuples (GUARD_SEND_SUBJECT_ARGS). Answers `s<j>` per send j: its outcome, then `name=value` lines:
 * - `refused`: `at` (the subject, 1-based in the send), `guard` (velocity, conversion, budget), `ms` (Retry-After),
 *   `why`, `started` (1: a velocity block starts with this send);
 * - `ok`: per subject i, `t<i>` (sends a budget took), `n<i>=throttled` and `w<i>` (why), `f<i>` (a budget it filled:
 *   why); and `dayEndMs`.
 */
export const GUARD_SEND = defineScript({
  name: 'otpGuardSend',
  doc: 'check and count the sends of one slot, each on its subjects; a send a guard refuses counts nothing',
  keys: [],
  args: ['now', 'deadline', 'limits'],
  restKeys: 'states',
  lib: `${LATE_LUA}${LIB}`,
  body: `
-- run later than its deadline (Redis hung, then woke up after the API answered 503): counts nothing
if late(A.deadline) then return {'late'} end
local L = {}
for x in string.gmatch(A.limits, '[^,]+') do L[#L + 1] = x end
local S = {${GUARD_SEND_SETTINGS.map((n, i) => `${n} = L[${i + 1}]`).join(', ')}}
local now = clock(A.now)
local day = math.floor(now / DAY)
local dayEndMs = (day + 1) * DAY - now
local bucketMs, buckets, keepMs = tonumber(S.convBucketMs), tonumber(S.convBuckets), tonumber(S.keepMs)
local sendsNow = G.sendsPrefix .. math.floor(now / bucketMs)
local money = function(m) return string.format('%.2f %s', m / 1000000, S.currency) end

-- The subjects' states by KEYS index: read on first use, changed in memory (\`put\` notes a field to write), written
-- at the end. \`why\` is read only when a block refuses.
local states = {}
local function stateOf(k)
  local st = states[k]
  if st then return st end
  local key = K.states[k]
  local h = redis.call('HMGET', key, G.blockedUntil, G.unverified, G.windowEnd, G.day, G.dayCount, G.daySpend,
    G.throttledUntil, G.convBucket, G.convJudged, G.convApproved, sendsNow, G.keptUntil)
  st = {
    key = key, blk = tonumber(h[1] or '0'), vu = tonumber(h[2] or '0'), vEnd = tonumber(h[3] or '0'),
    day = tonumber(h[4] or '-1'), bn = tonumber(h[5] or '0'), bs = tonumber(h[6] or '0'), thr = tonumber(h[7] or '0'),
    sums = {h[8], h[9], h[10]}, sends = tonumber(h[11] or '0'), kept = tonumber(h[12] or '0'), fields = {},
  }
  states[k] = st
  return st
end
local function put(st, field, value) st.fields[field] = value end
-- the conversion window's judged sends and approvals, brought up to now on first use (the current bucket's sends
-- are not judged: those of this call do not change them)
local function judged(st)
  if st.sent == nil then
    local _, sent, ok, moved = conv(st.key, now, bucketMs, buckets, st.sums)
    st.sent, st.ok = sent, ok
    -- the sums were written (a new hash is created by it); a clock moved back may have deleted the current
    -- bucket: read it again
    if moved then
      st.wrote = true
      st.sends = tonumber(redis.call('HGET', st.key, sendsNow) or '0')
    end
  end
  return st.sent, st.ok
end

local function refusal(i, guard, ms, why, started)
  return 'refused\\nat=' .. i .. '\\nguard=' .. guard .. '\\nms=' .. ms .. '\\nwhy=' .. why .. '\\nstarted=' .. started
end

-- One send on its subjects: first each is judged, changing nothing (but a velocity block that starts now); then,
-- when all let it go, it is counted on each.
local function check(subjects)
  for i, p in ipairs(subjects) do
    local st = p.st
    if st.blk > now then
      st.why = st.why or redis.call('HGET', st.key, G.why) or ''
      return refusal(i, 'velocity', st.blk - now, st.why, 0)
    end
    -- spend in millionths of the currency: whole numbers
    p.bn, p.spent = 0, 0
    if p.budget > 0 or p.spendBudget > 0 then
      if st.day == day then p.bn, p.spent = st.bn, st.bs end
      if p.budget > 0 and p.bn >= p.budget then
        return refusal(i, 'budget', dayEndMs, p.bn .. ' SMS today, the daily budget is ' .. p.budget, 0)
      end
      if p.spendBudget > 0 and p.price > 0 and p.spent + p.price > p.spendBudget then
        return refusal(i, 'budget', dayEndMs,
          money(p.spent) .. ' spent today, the daily budget is ' .. money(p.spendBudget), 0)
      end
      -- a lease takes what is left, if less than it asks
      if p.budget > 0 then p.take = math.min(p.take, p.budget - p.bn) end
      if p.spendBudget > 0 and p.price > 0 then
        p.take = math.min(p.take, math.floor((p.spendBudget - p.spent) / p.price))
      end
    end
    p.throttle = nil
    if p.convMin > 0 then
      local sent, ok = judged(st)
      if sent >= p.convMin and ok * 100 < sent * tonumber(S.convMinPercent) then
        local why = ok .. ' approved of ' .. sent .. ' codes sent, under ' .. S.convMinPercent .. '%'
        if st.thr > now then return refusal(i, 'conversion', st.thr - now, why, 0) end
        -- throttled, not closed: this send goes, the next one after throttleMs, so approvals can bring it back
        p.throttle = why
      end
    end
    if p.vmax > 0 then
      p.vu, p.vEnd = st.vu, st.vEnd
      if p.vEnd <= now then p.vu, p.vEnd = 0, now + tonumber(S.velocityWindowMs) end
      if p.vu >= p.vmax then
        local why = p.vu .. ' codes sent without a verification after them (limit ' .. p.vmax .. ')'
        local cool = tonumber(S.cooldownMs)
        -- the count starts again after the cool-down: the block is the penalty
        st.blk, st.why, st.vu, st.vEnd = now + cool, why, 0, 0
        put(st, G.blockedUntil, st.blk); put(st, G.why, why); put(st, G.unverified, 0); put(st, G.windowEnd, 0)
        st.keepFor = math.max(st.keepFor or 0, cool + keepMs)
        return refusal(i, 'velocity', cool, why, 1)
      end
    end
  end
  local a = {'ok'}
  for i, p in ipairs(subjects) do
    local st = p.st
    if p.throttle then
      st.thr, st.why = now + tonumber(S.throttleMs), p.throttle
      put(st, G.throttledUntil, st.thr); put(st, G.why, st.why)
      a[#a + 1] = 'n' .. i .. '=throttled'; a[#a + 1] = 'w' .. i .. '=' .. p.throttle
    end
    if p.vmax > 0 then
      st.vu, st.vEnd = p.vu + 1, p.vEnd
      put(st, G.unverified, st.vu); put(st, G.windowEnd, st.vEnd)
    end
    if p.budget > 0 or p.spendBudget > 0 then
      st.day, st.bn, st.bs = day, p.bn + p.take, p.spent + p.price * p.take
      put(st, G.day, day); put(st, G.dayCount, st.bn); put(st, G.daySpend, st.bs)
      a[#a + 1] = 't' .. i .. '=' .. p.take
      -- the send that fills a budget starts its block (the index lists it until the day ends)
      if p.budget > 0 and st.bn >= p.budget then
        a[#a + 1] = 'f' .. i .. '=' .. st.bn .. ' SMS today, the daily budget is ' .. p.budget
      elseif p.spendBudget > 0 and p.price > 0 and st.bs + p.price > p.spendBudget then
        -- the next send at this price would pass the budget
        a[#a + 1] = 'f' .. i .. '=' .. money(st.bs) .. ' spent today, the daily budget is ' .. money(p.spendBudget)
      end
    end
    if p.convMin > 0 then st.sends = st.sends + 1; put(st, sendsNow, st.sends) end
  end
  a[#a + 1] = 'dayEndMs=' .. dayEndMs
  return table.concat(a, '\\n')
end

local out = {'ok'}
local pos, W, j = ${GUARD_SEND_SETTINGS.length} + 1, ${GUARD_SEND_SUBJECT_ARGS.length}, 0
while pos <= #L do
  j = j + 1
  local n = tonumber(L[pos])
  local t = pos + 1 + n
  local subjects = {}
  for i = 1, n do
    local o = t + (i - 1) * W
    subjects[i] = {
      st = stateOf(tonumber(L[pos + i])),
      vmax = tonumber(L[o]), convMin = tonumber(L[o + 1]), budget = tonumber(L[o + 2]),
      spendBudget = tonumber(L[o + 3]), price = tonumber(L[o + 4]), take = tonumber(L[o + 5]),
    }
  end
  out[#out + 1] = 's' .. j; out[#out + 1] = check(subjects)
  pos = t + n * W
end
-- Every changed state written once, its expiry after the HSET (a new subject's hash exists only from it). A hash
-- written here is kept at least keepMs from now (its windows' counts must outlive them): its expiry is set to
-- 1.5 keepMs when less than keepMs is left, so a PEXPIRE runs once per half keepMs, not on every send.
for k = 1, #K.states do
  local st = states[k]
  if st then
    local f = {}
    for field, value in pairs(st.fields) do f[#f + 1] = field; f[#f + 1] = value end
    local written = #f > 0 or st.wrote
    if st.keepFor then
      -- a block keeps its subject until after its cool-down
      local ends = now + math.max(tonumber(redis.call('PTTL', st.key)), st.keepFor)
      f[#f + 1] = G.keptUntil; f[#f + 1] = ends
      redis.call('HSET', st.key, unpack(f))
      redis.call('PEXPIRE', st.key, ends - now)
    elseif written and st.kept < now + keepMs then
      local keep = math.floor(keepMs * 1.5)
      f[#f + 1] = G.keptUntil; f[#f + 1] = now + keep
      redis.call('HSET', st.key, unpack(f))
      redis.call('PEXPIRE', st.key, keep)
    elseif #f > 0 then
      redis.call('HSET', st.key, unpack(f))
    end
  end
end
return out
`,
});

export const GUARD_LIFT = defineScript({
  name: 'otpGuardLift',
  doc: 'an operator lifts a block: forget what that guard counted of the subject, and nothing else it holds',
  keys: ['state'],
  args: ['guard'],
  lib: GUARD_LUA,
  body: `
-- a country's subject holds both its conversion watch and its day's budget counts: lifting one keeps the other
local del
if A.guard == 'prefix_velocity' then
  del = {G.blockedUntil, G.why, G.unverified, G.windowEnd}
elseif A.guard == 'low_conversion' then
  del = {G.throttledUntil, G.convBucket, G.convJudged, G.convApproved}
  local buckets = '^[' .. G.sendsPrefix .. G.approvalsPrefix .. ']%-?%d+$'
  for _, f in ipairs(redis.call('HKEYS', K.state)) do
    if string.match(f, buckets) then del[#del + 1] = f end
  end
else
  del = {G.day, G.dayCount, G.daySpend}
end
redis.call('HDEL', K.state, unpack(del))
return {'lifted'}
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
