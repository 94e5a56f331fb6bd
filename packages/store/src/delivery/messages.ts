import type { ProviderId } from '@otp-gateway/core';
import { bucketTag, type Keyspace } from '../keyspace.js';
import type { RedisClient } from '../redis/connection.js';
import { defineScript } from '../redis/script.js';

/**
 * The message index: which OTP attempt a provider's message id belongs to, and the delivery reports that
 * arrived before the worker recorded the id. Both keys of a message share one slot (a hash bucket of provider
 * and message id, so a message id never picks a slot), which makes "look up, or keep the report" and "record the
 * id, and take the reports kept" atomic with each other: a report is either applied or handed to the worker.
 * - `msg:<provider>:<messageId>` STRING `<otpId>:<attempt>`, kept as long as OTP records are;
 * - `early:<provider>:<messageId>` LIST of report JSON, newest last, capped (EARLY_REPORTS_CAP), kept an hour;
 * - `early-kept` STRING per bucket: early reports kept in the bucket this hour, capped (EARLY_REPORTS_PER_BUCKET),
 *   so the total kept stays under EARLY_REPORTS_PER_BUCKET x 4096 an hour whatever ids a caller invents.
 */
const LOOKUP = defineScript({
  name: 'otpMessageLookup',
  doc: 'the OTP attempt of a message id; when unknown yet, keep the report for the worker, within the caps',
  keys: ['index', 'early', 'kept'],
  args: ['report', 'cap', 'bucketCap', 'earlyTtlMs'],
  body: `
local ref = redis.call('GET', K.index)
if ref then return {'found', 'ref', ref} end
-- reports kept in this bucket in the current window (opened by its first one, earlyTtlMs long): past the cap,
-- a report for a message id nobody recorded is dropped, so unknown ids cannot fill Redis
local kept = redis.call('INCR', K.kept)
if kept == 1 then redis.call('PEXPIRE', K.kept, A.earlyTtlMs) end
if kept > tonumber(A.bucketCap) then return {'dropped'} end
local trimmed = 0
if redis.call('RPUSH', K.early, A.report) > tonumber(A.cap) then
  redis.call('LTRIM', K.early, -tonumber(A.cap), -1)
  trimmed = 1
end
redis.call('PEXPIRE', K.early, A.earlyTtlMs)
return {'kept', 'trimmed', trimmed}
`,
});

const RECORD = defineScript({
  name: 'otpMessageRecord',
  doc: 'record which OTP attempt a message id belongs to; hand over the reports that came first',
  keys: ['index', 'early'],
  args: ['ref', 'ttlMs'],
  body: `
redis.call('SET', K.index, A.ref, 'PX', A.ttlMs)
local early = redis.call('LRANGE', K.early, 0, -1)
if #early > 0 then redis.call('DEL', K.early) end
local out = {'recorded', 'count', #early}
for i, r in ipairs(early) do out[#out + 1] = 'r' .. i; out[#out + 1] = r end
return out
`,
});

/** Early reports kept per message id. */
export const EARLY_REPORTS_CAP = 20;
/** How long early reports wait for their message id. */
export const EARLY_REPORTS_TTL_MS = 3600_000;
/**
 * Early reports kept per message bucket (4096 buckets) per hour: about 200,000 in all (some 40 MB at worst). A
 * report that beats the worker's record step by milliseconds is rare; more in one bucket is someone inventing ids.
 */
export const EARLY_REPORTS_PER_BUCKET = 50;

/** What became of a report whose message id is not recorded yet. */
export type EarlyOutcome = 'kept' | 'trimmed' | 'dropped';

/** The caps of early reports (tests lower them). */
export interface EarlyCaps {
  readonly perMessage: number;
  readonly perBucket: number;
}

/** An OTP attempt a message belongs to. */
export interface MessageRef {
  readonly otpId: string;
  readonly attempt: number;
}

export interface MessageIndex {
  /**
   * The attempt of a message; null when the id is not recorded yet (then `report` is kept for the worker), or
   * 'dropped' when it is not and the early reports of its bucket are at their cap. `onEarly` hears what became
   * of a report kept or dropped (metrics).
   */
  lookup(provider: ProviderId, messageId: string, report: string): Promise<MessageRef | null | 'dropped'>;
  /** Records the message of an attempt; returns the reports (JSON) that arrived before, to apply now. */
  record(provider: ProviderId, messageId: string, ref: MessageRef, ttlMs: number): Promise<string[]>;
}

/** The keys of a message (tests inspect them). */
export function messageKeys(ks: Keyspace, provider: ProviderId, messageId: string) {
  const tag = bucketTag('m', `${provider}:${messageId}`);
  return {
    index: ks.key(tag, `msg:${provider}:${messageId}`),
    early: ks.key(tag, `early:${provider}:${messageId}`),
    kept: ks.key(tag, 'early-kept'),
  };
}

export function createMessageIndex(
  redis: RedisClient,
  ks: Keyspace,
  opts: { caps?: EarlyCaps; onEarly?: (provider: ProviderId, outcome: EarlyOutcome) => void } = {},
): MessageIndex {
  const keysOf = (provider: ProviderId, messageId: string) => messageKeys(ks, provider, messageId);
  const caps = opts.caps ?? { perMessage: EARLY_REPORTS_CAP, perBucket: EARLY_REPORTS_PER_BUCKET };
  return {
    async lookup(provider, messageId, report) {
      const r = await LOOKUP.run(redis, keysOf(provider, messageId), {
        report,
        cap: caps.perMessage,
        bucketCap: caps.perBucket,
        earlyTtlMs: EARLY_REPORTS_TTL_MS,
      });
      if (r.outcome === 'dropped') {
        opts.onEarly?.(provider, 'dropped');
        return 'dropped';
      }
      if (r.outcome !== 'found') {
        opts.onEarly?.(provider, r.trimmed === '1' ? 'trimmed' : 'kept');
        return null;
      }
      const ref = String(r.ref);
      const cut = ref.lastIndexOf(':');
      return { otpId: ref.slice(0, cut), attempt: Number(ref.slice(cut + 1)) };
    },
    async record(provider, messageId, ref, ttlMs) {
      const r = await RECORD.run(redis, keysOf(provider, messageId), { ref: `${ref.otpId}:${ref.attempt}`, ttlMs });
      const out: string[] = [];
      for (let i = 1; i <= Number(r.count); i++) out.push(String(r[`r${i}`]));
      return out;
    },
  };
}
