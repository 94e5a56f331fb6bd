import { setTimeout as sleep } from 'node:timers/promises';
import type { ProviderId } from '@otp-gateway/core';
import { EXPIRY_CHECK } from '../events/expiry.script.js';
import type { StatusEvents } from '../events/status-events.js';
import {
  type CostCheckSettings,
  enqueueCostCheck,
  enqueueResend,
  requeue,
  type SendQueues,
} from '../jobs/send-jobs.js';
import { type Keyspace, PARTITIONS, partitionTagOf } from '../keyspace.js';
import { DUE, otpKeys, SWEEP_GRACE_MS, SWEEP_RELIST_MS } from '../otp/otp.record.js';
import type { RedisClient } from '../redis/connection.js';
import { CLOCK_LUA, defineScript } from '../redis/script.js';
import type { Circuits } from './circuit.js';
import { MIN_RESEND_LIFE_MS } from './life-left.js';
import { COST_DUE, RECEIPT_TIMEOUT, SWEEP_UNSTARTED } from './sweep.scripts.js';

/**
 * The sweep: the workers' safety net, run every few seconds by one worker at a time (a lock in the `{sweep}`
 * slot). It reads what is due in each partition's due set (otp.record.ts) and, per entry, runs the OTP's own
 * script (keys built from the entry's id here, never inside a script):
 * - `s:<id>`, an OTP whose job never started (the API stopped, or lost Redis, between storing the OTP and adding
 *   its job; a resend the callbacks app could not queue): its job is queued again (same job id, so a job merely
 *   waiting is not doubled), or, too close to expiry, the OTP is given up;
 * - `r:<id>:<n>`, attempt n waiting for its delivery receipt: when no final receipt came and the attempt still
 *   counts, it becomes `no_receipt`, the provider's circuit takes a failure, and the code goes out through the
 *   next provider. A message the provider reported `sent` (a carrier took it: some destinations never tell more)
 *   or accepted under an id no report carries is not the provider's failure: no circuit failure; the code is
 *   resent all the same, unless `resendAfterSent` is off for a `sent` one (it then keeps counting, as sent).
 * - `e:<event>:<id>:<n>`, a status event its process did not publish (it died or lost Redis): published now;
 * - `x:<id>`, an OTP with status events at its expiry: ended expired if nobody verified it, `otp.expired` published;
 * - `c:<id>:<n>`, attempt n whose provider tells its cost after the send: its cost job is queued (send-jobs.ts).
 * Reading 4096 partitions is 4096 cheap reads per round, spread over the cluster's masters.
 */
const DUE_NOW = defineScript({
  name: 'otpDueNow',
  doc: 'entries of a due set whose time has come (by this node clock)',
  keys: ['due'],
  args: ['now', 'limit'],
  lib: CLOCK_LUA,
  body: `
local due = redis.call('ZRANGEBYSCORE', K.due, '-inf', clock(A.now), 'LIMIT', 0, tonumber(A.limit))
local out = {'due', 'count', #due}
for i, m in ipairs(due) do out[#out + 1] = 'm' .. i; out[#out + 1] = m end
return out
`,
});

export interface SweepReport {
  readonly queued: number;
  readonly gaveUp: number;
  readonly receiptTimeouts: number;
  /** Status events published by the sweep (left listed by their process, or expiries). */
  readonly events: number;
  /** Partitions or entries that could not be handled this round (they are looked at again next round). */
  readonly errors: number;
}

export interface SweepDeps {
  readonly redis: RedisClient;
  readonly ks: Keyspace;
  readonly queues: SendQueues;
  readonly circuits: Circuits;
  /** Publishes status events; without it, event and expiry entries are left for a worker that has it. */
  readonly events?: StatusEvents;
  /** Each OTP that ends failed here, with its calling code (for the funnel metric). */
  readonly onFailed?: (otpId: string, callingCode: string) => void;
  /** Each receipt that never came, by provider. */
  readonly onNoReceipt?: (provider: ProviderId) => void;
  /**
   * Each message whose final receipt never came for a reason not the provider's (reported sent, or accepted under
   * an id no report carries), by provider, resent or not.
   */
  readonly onNoFinalReceipt?: (provider: ProviderId) => void;
  /**
   * DELIVERY_RESEND_AFTER_SENT: whether a message reported sent whose final receipt never came is resent through
   * the next provider (the default: in doubt, send again); off, it keeps counting as sent.
   */
  readonly resendAfterSent?: boolean;
  /** How cost jobs are tried (COST_CHECK_*); by default 6 tries, a minute apart at first. */
  readonly costChecks?: CostCheckSettings;
  readonly now?: () => number;
}

/** How one round goes (sweepDue); the worker's rounds are startSweeper's (sweeper.ts). */
export interface SweepOptions {
  /** The partitions to read (all of them by default). */
  readonly partitions?: readonly number[];
  /** Where in `partitions` the round starts, going round to the ones before last (0 by default). */
  readonly startAt?: number;
  /** Entries handled per partition and round (100 by default). */
  readonly batch?: number;
  /** Partitions read at once: 512 by default, 64 when the round is spread. */
  readonly concurrency?: number;
  /**
   * A round ends after this long (30 s by default) even when part of the store hangs (one master away), or with a
   * backlog of entries: what it did not reach waits for the next round.
   */
  readonly budgetMs?: number;
  /**
   * Spreads the reads evenly over this long instead of reading every partition at once. A round at once is 4096
   * script calls that hold the worker's event loop and Redis for tens of milliseconds: every send waiting meanwhile
   * took that much longer to reach its provider (time to SMS, in bench/end-to-end.bench.mjs).
   */
  readonly spreadMs?: number;
  /** Ends the round early (the worker stopping), after the entry it is handling. */
  readonly signal?: AbortSignal;
}

/** One round over every partition (or the given ones); entries per partition are bounded by `batch`. */
export async function sweepDue(deps: SweepDeps, opts: SweepOptions = {}): Promise<SweepReport> {
  const all = opts.partitions ?? Array.from({ length: PARTITIONS }, (_, i) => i);
  const from = (opts.startAt ?? 0) % Math.max(1, all.length);
  const parts = from === 0 ? all : [...all.slice(from), ...all.slice(0, from)];
  const now = () => deps.now?.() ?? 0;
  const totals = { queued: 0, gaveUp: 0, receiptTimeouts: 0, events: 0, errors: 0 };
  const spreadMs = opts.spreadMs ?? 0;
  const step = opts.concurrency ?? (spreadMs > 0 ? 64 : 512);
  const started = Date.now();
  const deadline = started + (opts.budgetMs ?? 30_000);
  const going = () => Date.now() < deadline && !opts.signal?.aborted;
  for (let i = 0; i < parts.length && going(); i += step) {
    if (i > 0 && spreadMs > 0) {
      // until this chunk's share of the spread; an abort ends the wait (and the round, below)
      const waitMs = started + (spreadMs * i) / parts.length - Date.now();
      if (waitMs > 0) await sleep(waitMs, undefined, { signal: opts.signal, ref: false }).catch(() => undefined);
      if (!going()) break;
    }
    const chunk = parts.slice(i, i + step);
    // One partition that cannot be read (its master away) does not stop the others.
    const due = await Promise.allSettled(
      chunk.map((p) =>
        DUE_NOW.run(
          deps.redis,
          { due: deps.ks.key(partitionTagOf(p), 'due') },
          { now: now(), limit: opts.batch ?? 100 },
        ),
      ),
    );
    for (const r of due) {
      if (r.status === 'rejected') {
        totals.errors++;
        continue;
      }
      for (let m = 1; m <= Number(r.value.count) && going(); m++) {
        try {
          await sweepEntry(deps, String(r.value[`m${m}`]), now(), totals);
        } catch {
          totals.errors++;
        }
      }
    }
  }
  return totals;
}

async function sweepEntry(
  deps: SweepDeps,
  member: string,
  now: number,
  totals: { queued: number; gaveUp: number; receiptTimeouts: number; events: number },
) {
  if (member.startsWith(DUE.event)) {
    if (deps.events && (await deps.events.publishMember(member)) === 'queued') totals.events++;
    return;
  }
  if (member.startsWith(DUE.expiry)) {
    if (!deps.events) return;
    const otpId = member.slice(DUE.expiry.length);
    const r = await EXPIRY_CHECK.run(deps.redis, otpKeys(deps.ks, otpId), { now, id: otpId });
    if (r.outcome === 'expired' && (await deps.events.publish(otpId, 'expired', 0)) === 'queued') totals.events++;
    return;
  }
  if (member.startsWith(DUE.unstarted)) {
    const otpId = member.slice(DUE.unstarted.length);
    const r = await SWEEP_UNSTARTED.run(deps.redis, otpKeys(deps.ks, otpId), {
      now,
      id: otpId,
      minLifeMs: MIN_RESEND_LIFE_MS,
      sweepAfterMs: SWEEP_RELIST_MS,
    });
    if (r.outcome === 'enqueue') {
      if (await requeue(deps.queues, otpId, r.kind === 'send' ? null : Number(r.after))) totals.queued++;
    } else if (r.outcome === 'gave_up' && r.failed === '1') {
      totals.gaveUp++;
      deps.onFailed?.(otpId, r.cc ?? '');
      if (deps.events && (await deps.events.publish(otpId, 'failed', 0)) === 'queued') totals.events++;
    }
    return;
  }
  if (member.startsWith(DUE.cost)) {
    const [otpId = '', attempt = '0'] = member.slice(DUE.cost.length).split(':');
    const keys = otpKeys(deps.ks, otpId);
    const r = await COST_DUE.run(deps.redis, keys, { now, id: otpId, attempt, sweepAfterMs: SWEEP_RELIST_MS });
    if (r.outcome !== 'ask') return;
    const table = r.cost ? { amount: Number(r.cost), currency: r.currency ?? '' } : null;
    await enqueueCostCheck(
      deps.queues,
      otpId,
      {
        attempt: Number(attempt),
        provider: r.provider as ProviderId,
        messageId: r.messageId ?? '',
        callingCode: r.cc ?? '',
        table,
      },
      deps.costChecks ?? { attempts: 6, backoffMs: 60_000 },
    );
    // queued (the job id makes a second add of the same check nothing): the entry can go
    await deps.redis.zrem(keys.due, member);
    totals.queued++;
    return;
  }
  if (member.startsWith(DUE.receipt)) {
    const [otpId = '', attempt = '0'] = member.slice(DUE.receipt.length).split(':');
    const r = await RECEIPT_TIMEOUT.run(deps.redis, otpKeys(deps.ks, otpId), {
      now,
      id: otpId,
      attempt,
      minLifeMs: MIN_RESEND_LIFE_MS,
      sweepAfterMs: SWEEP_GRACE_MS,
      resendAfterSent: deps.resendAfterSent === false ? '0' : '1',
    });
    const provider = r.provider as ProviderId;
    if (r.excused === '1') deps.onNoFinalReceipt?.(provider);
    if (r.outcome !== 'resend') return;
    totals.receiptTimeouts++;
    // the provider's failure only when it said nothing after accepting (not a carrier's silence, nor a report
    // that could not be matched)
    if (r.excused !== '1') {
      deps.onNoReceipt?.(provider);
      await deps.circuits.failure(provider, 'no_receipt');
    }
    await enqueueResend(deps.queues, otpId, Number(attempt));
    totals.queued++;
  }
}
