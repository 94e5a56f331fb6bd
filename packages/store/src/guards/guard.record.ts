import { bucketTag, type Keyspace } from '../keyspace.js';

/**
 * The abuse guards' records, owned here. One HASH per subject, holding whichever of these the subject's guards use:
 * - velocity (subjects `vr:<country>:<key>:<range>`, `vc:<country>:<key>`): sends not followed by a verification
 *   in the current window, its end, and the block (until, why) once past the limit;
 * - conversion watch (`wr:<country>:<range>`, `wc:<country>`): sends and approvals per time bucket (`s<i>`, `a<i>`,
 *   i the bucket number) with their running sums over the window, and while the approved share is low, when the
 *   next send may go;
 * - daily budgets (`wc:<country>`, `bk:<key>`): the UTC day number, the SMS counted that day and what they are
 *   expected to cost (millionths of SMS_PRICE_CURRENCY, so the script adds whole numbers).
 * The dashboard's "lift" deletes the fields of the guard it lifts (GUARD_LIFT), not the others the hash holds.
 *
 * Slots: a subject's first part after its kind is its owner, and the key is `{g<xyz>}:g:<subject>` with xyz a hash
 * bucket of the owner. Every subject of one country (velocity and conversion of its ranges, the country's own)
 * shares the country's slot, and a key's budget has the key's slot, so a send is checked by two scripts (one per
 * slot; the key's is mostly skipped, see the leases in guards.ts), not one per subject: each script call costs the
 * API more than the work inside it. And the sends to one country that an API process takes in one turn of its event
 * loop share one call, reading and writing the country's two hashes once. The price: all guard work for one country
 * lands on one node of a cluster (a few hash commands per send).
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
  /**
   * Until when the hash is kept (its expiry, in ms): a send renews the expiry (to 1.5 times the keep time) only when
   * less than the keep time is left.
   */
  keptUntil: 'kx',
  /**
   * The conversion window's running sums, so a send reads three fields, not the whole window: the bucket they were
   * brought up to, the sends of the judged buckets (the window but its newest bucket) and the approvals of the window.
   */
  convBucket: 'cb',
  convJudged: 'cj',
  convApproved: 'ca',
  /** Prefixes of the conversion buckets: `s<i>` sends, `a<i>` approvals. */
  sendsPrefix: 's',
  approvalsPrefix: 'a',
});

/** What a guard watches: velocity per range or country (per key), conversion per range or country, budget per key. */
export type GuardSubjectKind = 'vr' | 'vc' | 'wr' | 'wc' | 'bk';

/** A subject: its kind, its owner (the country, or the key for `bk`), then what narrows it. */
export const guardSubject = (kind: GuardSubjectKind, owner: string, ...parts: string[]): string =>
  [kind, owner, ...parts].join(':');

/** The slot tag of a subject's owner, remembered: countries and keys are few, and a send needs two. */
const tags = new Map<string, string>();
export const guardTag = (owner: string): string => {
  let tag = tags.get(owner);
  if (tag === undefined) {
    tag = bucketTag('g', owner);
    if (tags.size < 10_000) tags.set(owner, tag);
  }
  return tag;
};

/** The owner of a subject (see above): the part after its kind. */
const ownerOf = (subject: string): string => {
  const start = subject.indexOf(':') + 1;
  const end = subject.indexOf(':', start);
  return end < 0 ? subject.slice(start) : subject.slice(start, end);
};

export const guardKey = (ks: Keyspace, subject: string): string => ks.key(guardTag(ownerOf(subject)), `g:${subject}`);

export const guardIndexKeys = (ks: Keyspace) => ({ blocks: ks.key('gb', 'blocks'), info: ks.key('gb', 'info') });

/** Lua table G of the field names. */
export const GUARD_LUA = `local G = {${Object.entries(GUARD_FIELDS)
  .map(([k, v]) => `${k} = '${v}'`)
  .join(', ')}}
`;
