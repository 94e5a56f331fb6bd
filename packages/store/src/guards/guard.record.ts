import { bucketTag, type Keyspace } from '../keyspace.js';

/**
 * The abuse guards' records, owned here. One HASH per subject, `{g<xyz>}:g:<subject>` (xyz a hash bucket of the
 * subject, so a pumping run heats one bucket and no subject string picks a slot), holding whichever of these the
 * subject's guards use:
 * - velocity (subjects `vr:<key>:<range>`, `vc:<key>:<country>`): sends not followed by a verification in the
 *   current window, its end, and the block (until, why) once past the limit;
 * - conversion watch (`wr:<range>`, `wc:<country>`): sends and approvals per time bucket (`s<i>`, `a<i>`, i the
 *   bucket number), and while the approved share is low, when the next send may go;
 * - daily budgets (`wc:<country>`, `bk:<key>`): the UTC day number, the SMS counted that day and what they are
 *   expected to cost (millionths of SMS_PRICE_CURRENCY, so the script adds whole numbers).
 * Deleting a subject's hash lifts whatever it held (the dashboard's "lift").
 *
 * The index of active blocks lives in `{gb}`: `blocks` ZSET (member `<guard>|<subject>`, score: until, ms) and
 * `info` HASH (same member: JSON of the block for the dashboard and the gauge). Written only when a block starts,
 * is renewed or is lifted.
 */
export const GUARD_FIELDS = Object.freeze({
  blockedUntil: 'blk',
  why: 'why',
  unverified: 'vu',
  windowEnd: 'vEnd',
  day: 'day',
  dayCount: 'bn',
  daySpend: 'bs',
  throttledUntil: 'thr',
  /** Prefixes of the conversion buckets: `s<i>` sends, `a<i>` approvals. */
  sendsPrefix: 's',
  approvalsPrefix: 'a',
});

/** What a guard watches: velocity per range or country (per key), conversion per range or country, budget per key. */
export type GuardSubjectKind = 'vr' | 'vc' | 'wr' | 'wc' | 'bk';

export const guardSubject = (kind: GuardSubjectKind, ...parts: string[]): string => [kind, ...parts].join(':');

export const guardKey = (ks: Keyspace, subject: string): string => ks.key(bucketTag('g', subject), `g:${subject}`);

export const guardIndexKeys = (ks: Keyspace) => ({ blocks: ks.key('gb', 'blocks'), info: ks.key('gb', 'info') });

/** Lua table G of the field names. */
export const GUARD_LUA = `local G = {${Object.entries(GUARD_FIELDS)
  .map(([k, v]) => `${k} = '${v}'`)
  .join(', ')}}
`;
