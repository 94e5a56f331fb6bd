import { RECORD_LUA } from '../otp/otp.record.js';
import { CLOCK_LUA, defineScript } from '../redis/script.js';

/**
 * The sweep's look at an OTP with status events on when its expiry comes (`x:<id>` in the due set): a pending
 * OTP past its expiry ends expired here (nobody had to verify it), and an expired one (here, by a verify, or
 * replaced by a newer one) gets its `otp.expired` listed, to publish now. The one place that lists that event:
 * an OTP expires once, whoever noticed it first.
 */
export const EXPIRY_CHECK = defineScript({
  name: 'otpExpiryCheck',
  doc: 'an OTP with status events reached its expiry: end it expired if pending, and list otp.expired',
  keys: ['otp', 'number', 'due'],
  args: ['now', 'id'],
  lib: `${CLOCK_LUA}${RECORD_LUA}`,
  body: `
local now = clock(A.now)
local member = DUE_EXPIRY .. A.id
redis.call('ZREM', K.due, member)
local o = redis.call('HMGET', K.otp, F.status, F.exp)
if not o[1] then return {'none'} end
local status = settle(K.otp, K.number, A.id, o[1], o[2], now)
if status == 'pending' then redis.call('ZADD', K.due, tonumber(o[2]), member); return {'pending'} end
if status ~= 'expired' then return {'none'} end
if not emit(K.otp, K.due, A.id, 'expired', 0, now, 0) then return {'none'} end
return {'expired'}
`,
});
