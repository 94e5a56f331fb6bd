import { tokenOfOtpId } from '@otp-gateway/core';
import { type Keyspace, partitionTag } from '../keyspace.js';

/**
 * The OTP records, owned here: their keys, their field names, their lifetimes. Scripts get the field names as
 * the Lua tables `F` (an OTP), `AF` (an attempt's fields, suffixes of `a<n>.`) and `NF` (a number), views read
 * them through the same constants: nobody else spells a field.
 *
 * Three keys per partition tag `{p<xyz>}` (the first three hex digits of the number token, so an OTP's keys and
 * its number's record share one slot, and the id alone tells which):
 * - `o:<otpId>` HASH, one OTP (fields OTP_FIELDS, and per attempt n the ATTEMPT_FIELDS under `a<n>.`);
 *   it lives until `exp` + the record retention.
 * - `n:<token>` HASH, one number under one API key (NUMBER_FIELDS): its current OTP, send counters, wrong-code
 *   lockout. The current OTP replaces older ones: an OTP whose number points elsewhere is expired (replaced).
 * - `due` ZSET of work to look at after a time (score ms): `s:<otpId>` an OTP whose send job has not started, or
 *   whose attempt is not accepted yet (until the job that started it records the outcome, see `sendJob`),
 *   `r:<otpId>:<n>` attempt n waiting for its delivery receipt, `c:<otpId>:<n>` attempt n whose provider tells its
 *   cost after the send (its cost job is queued then). The workers' sweep reads it (delivery/sweep.ts).
 *   With status events on (field `ev`): `e:<event>:<otpId>:<n>` an event to publish (the outbox: listed by the
 *   script that makes the change, removed once its job is queued), `x:<otpId>` at the OTP's expiry, so that an
 *   OTP nobody verifies is noticed expired (events/status-events.ts).
 */
export const OTP_FIELDS = Object.freeze({
  /** API key name that created it (OTPs are scoped to their key). */
  key: 'key',
  phone: 'phone',
  /** HMAC of the code bound to the id; deleted once the OTP ends. */
  hash: 'hash',
  /** The code sealed with AES-GCM (bound to the id), for the workers; deleted once the OTP ends. */
  sealed: 'sealed',
  status: 'status',
  /** Delivery status of the attempt that counts. */
  ds: 'ds',
  /** Provider of the attempt that counts ('' before any). */
  provider: 'provider',
  /** Expiry, epoch ms. */
  exp: 'exp',
  created: 'created',
  endedAt: 'endedAt',
  /** Wrong codes still allowed. */
  left: 'left',
  /** Country calling code, for metrics. */
  cc: 'cc',
  /** ISO country of the number ('' on records older than SMS_ROUTES): picks its route (provider order). */
  country: 'ct',
  locale: 'locale',
  /** Number of attempts. */
  na: 'na',
  /** The attempt that counts (accepted, not known undelivered); '' when none. */
  acc: 'acc',
  /** The last attempt a provider accepted (it may have arrived even if a later one is tried). */
  sent: 'sent',
  /** Until when (ms) the attempt being sent holds the OTP: another job waits. */
  lease: 'lease',
  /**
   * The job that sends it, from the start of an attempt until one is accepted: '0' the first send's (job id: the
   * OTP id), n the resend's after attempt n (resendJobId). The sweep checks that job is still alive (sweep.scripts.ts).
   */
  sendJob: 'sj',
  /** The OTP that replaced this one. */
  replacedBy: 'replacedBy',
  /** Correlation metadata as JSON (core's encodeMetadata); absent when none was given. */
  meta: 'meta',
  /** '1' when status events are wanted for this OTP (a webhook endpoint was configured for its key at send). */
  events: 'ev',
  /** A test number's simulated outcome (TENANTS_FILE testNumbers): its SMS never reaches a provider. */
  test: 'test',
  /**
   * How many digits its code has (its API key's setting when it was sent): a verify checks a code's length
   * against it, whatever the key's setting has become since (a TENANTS_FILE reload). Absent on older records.
   */
  codeLength: 'cl',
});

/** Fields of attempt n, stored as `a<n>.<suffix>`. */
export const ATTEMPT_FIELDS = Object.freeze({
  provider: 'p',
  /** sending | interrupted | accepted | delivered | undelivered | failed | no_receipt | retryable | ... */
  outcome: 'o',
  errorCode: 'e',
  providerStatus: 's',
  messageId: 'm',
  startedAt: 't',
  updatedAt: 'u',
  /** The attempt whose request id this one carries (it differs when resuming an interrupted attempt). */
  requestAttempt: 'r',
  /** Last delivery status reported for it (moves forward only). */
  delivery: 'd',
  /** What its message cost, and the currency (accepted attempts whose cost is known). */
  cost: 'c',
  currency: 'cu',
  /**
   * Delivery reports that named this attempt (Twilio's StatusCallback carries it) before the worker recorded its
   * message: JSON, one a line, the newest ATTEMPT_EARLY_REPORTS_CAP; the acceptance hands them to the worker
   * (report.script.ts, ACCEPT). Kept with the record: a retried acceptance hands them over again.
   */
  early: 'er',
});

/** Reports kept on an attempt before its message is recorded (ATTEMPT_FIELDS.early): the newest stay. */
export const ATTEMPT_EARLY_REPORTS_CAP = 20;

export const NUMBER_FIELDS = Object.freeze({
  /** The number's current OTP id. */
  current: 'cur',
  /**
   * Wrong codes in the current window, and when it ends (ms): the window opens at its first wrong code and is not
   * moved by later ones; reaching the limit locks the number until `failuresUntil`, set then to lockMs ahead.
   */
  failures: 'nf',
  failuresUntil: 'nfUntil',
  /** No new send before (ms). */
  cooldownUntil: 'cdUntil',
  /** Sends in the current window, and when it ends (ms). */
  windowSends: 'sw',
  windowUntil: 'swUntil',
});

/**
 * How long an OTP may stay listed as not started before the sweep queues its job again; and how long after its
 * attempt's lease ends the sweep looks whether the job that started it is still alive.
 */
export const SWEEP_GRACE_MS = 10_000;

/**
 * After the sweep queued an OTP's job again, when it looks again if the job still has not started. Longer than
 * the grace: when workers are behind, a backlog of waiting jobs is listed too, and re-adding each (a no-op while
 * the job waits) every few seconds would only add to the load.
 */
export const SWEEP_RELIST_MS = 60_000;

/** Member prefixes of the due set. */
export const DUE = Object.freeze({ unstarted: 's:', receipt: 'r:', event: 'e:', expiry: 'x:', cost: 'c:' });

/**
 * How long an event stays listed before the sweep publishes it itself: the process that made the change publishes
 * it right away and removes the entry; the sweep only covers a process that died (or lost Redis) in between.
 */
export const EVENT_GRACE_MS = 15_000;

/** The keys of one OTP (and of its number and partition), from its id alone. */
export interface OtpKeys {
  readonly otp: string;
  readonly number: string;
  readonly due: string;
}

export function otpKeys(ks: Keyspace, otpId: string): OtpKeys {
  const token = tokenOfOtpId(otpId);
  const tag = partitionTag(token);
  return { otp: ks.key(tag, `o:${otpId}`), number: ks.key(tag, `n:${token}`), due: ks.key(tag, 'due') };
}

/** The number record of a token (for lookups by phone number). */
export const numberKey = (ks: Keyspace, token: string): string => ks.key(partitionTag(token), `n:${token}`);

const luaTable = (name: string, fields: Readonly<Record<string, string>>) =>
  `local ${name} = {${Object.entries(fields)
    .map(([k, v]) => `${k} = '${v}'`)
    .join(', ')}}`;

/**
 * Lua shared by the scripts of this record: the field tables, `af(n, part)` (an attempt's field name), and
 * `settle(okey, numkey, id, status, exp, now)`: the status as it stands, ending (as `expired`) a pending OTP past
 * its expiry or replaced by a newer one for its number.
 */
export const RECORD_LUA = `
${luaTable('F', OTP_FIELDS)}
${luaTable('AF', ATTEMPT_FIELDS)}
${luaTable('NF', NUMBER_FIELDS)}
local DUE_UNSTARTED, DUE_RECEIPT = '${DUE.unstarted}', '${DUE.receipt}'
local DUE_EVENT, DUE_EXPIRY, DUE_COST = '${DUE.event}', '${DUE.expiry}', '${DUE.cost}'
local function af(n, part) return 'a' .. n .. '.' .. part end
-- The outbox of status events: an OTP that wants them has event ev (of attempt n, 0 when not about one) listed in
-- its due set in the same step as the change; answers the member, or nil when events are off for it.
local function emit(okey, due, id, ev, n, now, grace)
  if redis.call('HGET', okey, F.events) ~= '1' then return nil end
  local m = DUE_EVENT .. ev .. ':' .. id .. ':' .. n
  redis.call('ZADD', due, now + (grace or ${EVENT_GRACE_MS}), m)
  return m
end
-- Ends an OTP: a final status, the time, and the code's hash and sealed form gone.
local function end_otp(okey, status, now, replacedBy)
  redis.call('HSET', okey, F.status, status, F.endedAt, now)
  if replacedBy then redis.call('HSET', okey, F.replacedBy, replacedBy) end
  redis.call('HDEL', okey, F.hash, F.sealed)
end
-- The status as it stands now, and true when this call ended it: a pending OTP past its expiry, or replaced
-- by a newer one for its number, is ended here and then.
local function settle(okey, numkey, id, status, exp, now)
  if status ~= 'pending' then return status, false end
  local cur = redis.call('HGET', numkey, NF.current)
  if cur and cur ~= id then end_otp(okey, 'expired', now, cur); return 'expired', true end
  if now >= tonumber(exp) then end_otp(okey, 'expired', now, nil); return 'expired', true end
  return status, false
end
`;
