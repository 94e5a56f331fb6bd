import type { GuardsConfig } from '@otp-gateway/core';
import { budgetOf } from '@otp-gateway/core';
import type { Keyspace } from '../keyspace.js';
import type { RedisClock } from '../redis/clock.js';
import type { RedisClient } from '../redis/connection.js';
import type { ScriptResult } from '../redis/script.js';
import { batchPerTurn } from '../redis/turn-batch.js';
import { type GuardSubjectKind, guardIndexKeys, guardKey, guardSubject } from './guard.record.js';
import {
  GUARD_APPROVED,
  GUARD_BLOCKED,
  GUARD_LIFT,
  GUARD_SEND,
  GUARD_SEND_SETTINGS,
  GUARD_SEND_SUBJECT_ARGS,
  GUARD_UNDO,
} from './guards.scripts.js';

/** The number a guard looks at: its E.164 form, ISO country and calling code, and the API key that sends. */
export interface GuardTarget {
  readonly keyName: string;
  readonly phoneNumber: string;
  readonly country: string;
  readonly callingCode: string;
  /** What the SMS is expected to cost, in SMS_PRICE_CURRENCY (core's expectedPrice); 0 or absent: not weighed. */
  readonly price?: number;
}

/** A guard's refusal code (CONTRACT): 429 with Retry-After. */
export type GuardCode = 'prefix_velocity' | 'low_conversion' | 'country_budget_exhausted' | 'key_budget_exhausted';

export type GuardOutcome =
  /** Counted by every guard; `undo` takes the counts back when the send does not happen after all. */
  | { kind: 'ok'; undo: () => Promise<void> }
  | { kind: 'refused'; code: GuardCode; retryAfterMs: number; why: string; subject: string };

/** One active block, as the dashboard and the gauge show it. */
export interface GuardBlock {
  /** `<code>|<subject>`: what `lift` takes. */
  readonly id: string;
  readonly guard: GuardCode;
  readonly subject: string;
  /** The range (`+33612345xxx`), the country or the API key name. */
  readonly label: string;
  readonly country: string;
  readonly callingCode: string;
  readonly why: string;
  readonly until: number;
}

export interface SendGuards {
  /** Checks and counts a send on every guard (one round trip); a refusal counts nothing. */
  send(t: GuardTarget, now?: number): Promise<GuardOutcome>;
  /** A code was approved: its send counts as verified and converted. */
  approved(t: GuardTarget, now?: number): Promise<void>;
  /** Active blocks (velocity blocks, low-conversion throttles, exhausted budgets), soonest to end first. */
  blocks(now?: number): Promise<GuardBlock[]>;
  /**
   * Lifts a block: what that guard counted of the subject starts again from nothing (a country's day budget
   * stays when its conversion throttle is lifted, and the reverse). False when there was no such block.
   */
  lift(id: string): Promise<boolean>;
}

/** The number range of a number: its E.164 form without the last `digits` digits. */
export const numberRange = (phoneNumber: string, digits: number): string => phoneNumber.slice(0, -digits);

interface Subject {
  readonly kind: GuardSubjectKind;
  readonly subject: string;
  /** Its hash's key; subjects whose keys share a slot are checked by one script call. */
  readonly key: string;
  readonly label: string;
  readonly velocityMax: number;
  readonly convMinSends: number;
  readonly budget: number;
  /** Daily spend budget, millionths of the currency; 0 = none. */
  readonly spendBudget: number;
}

/**
 * The subjects of a send by one API key to one country, worked out once and kept (keys and countries are few): a
 * send only adds its range to the two range subjects. Building five subjects, their keys and the script's limits
 * for every send cost the API more than the script call itself.
 */
interface Plan {
  /** What it was made with, that may change while the process runs: the key's own budgets (TENANTS_FILE), the price. */
  readonly ownSms: number | null;
  readonly ownSpend: number | null;
  readonly price: number;
  /**
   * The country slot's subjects in the order the script checks them; a range subject (`ranged`) is a template whose
   * subject and key end where the range goes.
   */
  readonly country: readonly (Subject & { readonly ranged: boolean })[];
  /** The key's budget (a slot of its own), or null when it has none. */
  readonly key: Subject | null;
  /** The country slot's subjects' tuples in GUARD_SEND's `limits`. */
  readonly countryTuples: string;
}

/** A send's subjects of one slot, waiting for the script call of this turn of the event loop there. */
interface Waiting {
  readonly group: readonly Subject[];
  /** The group's tuples in GUARD_SEND's `limits`. */
  readonly tuples: string;
  /** The clock the call reads (0: Redis's own; tests move it). */
  readonly now: number;
  readonly done: (r: ScriptResult) => void;
  readonly fail: (err: unknown) => void;
}

/** A send's answer in GUARD_SEND's reply: its outcome, then `name=value` lines. */
const answerOf = (raw: string | undefined): ScriptResult => {
  const [outcome = '', ...lines] = (raw ?? '').split('\n');
  const out: Record<string, string> = { outcome };
  for (const line of lines) {
    const eq = line.indexOf('=');
    out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out as ScriptResult;
};

/** Sends one GUARD_SEND call takes at most (a few µs of Redis's time each). */
const MAX_BATCH = 200;

const CONV_BUCKETS = 12;
const MICROS = 1_000_000;
const DAY_MS = 86_400_000;

/**
 * A key's daily budget is counted in Redis in leases: a send that finds no lease here takes up to LEASE_MAX sends'
 * worth (never more than 1/200 of the budget, nor more than is left), and the next sends of that key in this process
 * use it without a round trip to the key's slot, which would cost a script call per send. Every send is still
 * counted before it goes, so a key never passes its budget; what a process leased and did not use by the end of the
 * day (or when it stops) was counted all the same, so a key may stop up to LEASE_MAX sends per API process short of
 * it. The country's budget has no lease: its script runs anyway for the velocity and conversion guards.
 */
const LEASE_MAX = 50;
interface Lease {
  day: number;
  sms: number;
  /** Spend leased, millionths of the currency. */
  micros: number;
}

/** Builds the guards over Redis; `cfg.enabled` false gives guards that never refuse and touch nothing. */
export function createSendGuards(
  redis: RedisClient,
  ks: Keyspace,
  cfg: GuardsConfig,
  opts: {
    currency?: string;
    /** An API key's own daily budgets (TENANTS_FILE), read at each send; null fields: GUARD_DAILY_*_PER_KEY. */
    keyBudgets?: (keyName: string) => { dailySms: number | null; dailySpend: number | null } | null;
    /**
     * With a clock, a send's check carries a deadline `deadlineMs` after it was asked: run later than that (Redis
     * hung, then woke up, after the API answered 503), it counts nothing. Keep it under the connection's command
     * timeout, as the OTP scripts' (otp.repo.ts).
     */
    clock?: RedisClock;
    deadlineMs?: number;
  } = {},
): SendGuards {
  const currency = opts.currency ?? 'EUR';
  const v = cfg.velocity;
  const c = cfg.conversion;
  const convBucketMs = Math.ceil((c.windowSeconds * 1000) / CONV_BUCKETS);
  const keepMs = Math.max(v.windowSeconds * 1000, c.windowSeconds * 1000 + convBucketMs, 2 * 86_400_000);
  const index = guardIndexKeys(ks);
  /** Leases of key budgets (`bk` subjects), by subject. */
  const leases = new Map<string, Lease>();
  /** Keys whose lease is being asked for now (a script call in flight). */
  const leasing = new Set<string>();
  const leaseSize = (s: Subject, price: number): number => {
    let n = LEASE_MAX;
    if (s.budget > 0) n = Math.min(n, Math.floor(s.budget / 200));
    if (s.spendBudget > 0 && price > 0) n = Math.min(n, Math.floor(s.spendBudget / 200 / price));
    return Math.max(1, n);
  };
  /** Takes one send from the key's lease, when it holds one for this day (and this price). */
  const fromLease = (s: Subject, day: number, price: number): boolean => {
    const l = leases.get(s.subject);
    if (!l || l.day !== day || l.sms < 1 || (s.spendBudget > 0 && l.micros < price)) return false;
    l.sms -= 1;
    if (s.spendBudget > 0) l.micros -= price;
    return true;
  };
  const addToLease = (s: Subject, day: number, sms: number, price: number) => {
    const l = leases.get(s.subject);
    const micros = s.spendBudget > 0 ? price * sms : 0;
    if (l && l.day === day) {
      l.sms += sms;
      l.micros += micros;
    } else leases.set(s.subject, { day, sms, micros });
  };

  /** GUARD_SEND's settings: the start of every call's `limits`. */
  const settingValues: Record<(typeof GUARD_SEND_SETTINGS)[number], number | string> = {
    velocityWindowMs: v.windowSeconds * 1000,
    cooldownMs: v.cooldownSeconds * 1000,
    convMinPercent: c.minPercent,
    convBucketMs,
    convBuckets: CONV_BUCKETS,
    throttleMs: c.throttleSeconds * 1000,
    currency,
    keepMs,
  };
  const settings = GUARD_SEND_SETTINGS.map((name) => settingValues[name]).join(',');
  /** A group's tuples in GUARD_SEND's `limits`. */
  const tuplesOf = (group: readonly Subject[], price: number, take: (s: Subject) => number): string =>
    group
      .map((s) => {
        const tuple: Record<(typeof GUARD_SEND_SUBJECT_ARGS)[number], number> = {
          velocityMax: s.velocityMax,
          convMinSends: s.convMinSends,
          budget: s.budget,
          spendBudget: s.spendBudget,
          price: s.spendBudget > 0 ? price : 0,
          take: take(s),
        };
        return GUARD_SEND_SUBJECT_ARGS.map((name) => tuple[name]).join(',');
      })
      .join(',');

  /**
   * Sends that reach the guards in one turn of the event loop share one call per slot (and `now`, 0 but in tests),
   * made when the turn ends (batchPerTurn): a busy API takes several sends a turn, and a call costs the API and
   * Redis far more than one more send in it. A full batch goes as it is (a burst makes several calls, each a
   * bounded stretch of Redis's time).
   */
  const inTurn = batchPerTurn<Waiting>((sends) => runBatch(sends, sends[0]!.now), MAX_BATCH);
  const checkInBatch = (group: readonly Subject[], tuples: string, now: number): Promise<ScriptResult> =>
    new Promise((done, fail) => {
      // the slot: the hash tag of the group's keys (they share it)
      const key = group[0]!.key;
      inTurn(`${key.slice(key.indexOf('{'), key.indexOf('}'))}|${now}`, { group, tuples, now, done, fail });
    });
  const runBatch = (sends: readonly Waiting[], now: number) => {
    const keys: string[] = [];
    const indexOf = new Map<string, number>();
    const limits = [settings];
    for (const w of sends) {
      limits.push(String(w.group.length));
      for (const s of w.group) {
        let k = indexOf.get(s.key);
        if (k === undefined) {
          keys.push(s.key);
          k = keys.length;
          indexOf.set(s.key, k);
        }
        limits.push(String(k));
      }
      limits.push(w.tuples);
    }
    const deadline = opts.clock?.deadline(opts.deadlineMs ?? 500) ?? 0;
    GUARD_SEND.run(redis, {}, { now, deadline, limits: limits.join(',') }, { keys }).then(
      (r) => {
        if (r.outcome === 'late') {
          for (const w of sends) w.fail(new Error('guards: the check ran past its deadline and counted nothing'));
          return;
        }
        for (let j = 0; j < sends.length; j++) {
          const answer = answerOf(r[`s${j + 1}`]);
          // an answer missing or garbled is an error, never a send let through uncounted
          if (answer.outcome === 'ok' || answer.outcome === 'refused') sends[j]!.done(answer);
          else sends[j]!.fail(new Error(`guards: no answer for send ${j + 1} of ${sends.length}`));
        }
      },
      (err) => {
        for (const w of sends) w.fail(err);
      },
    );
  };

  const plans = new Map<string, Plan>();
  const makePlan = (t: GuardTarget, price: number, ownSms: number | null, ownSpend: number | null): Plan => {
    const subject = (s: Omit<Subject, 'key'>, ranged = false) => ({ ...s, key: guardKey(ks, s.subject), ranged });
    const all = [
      subject(
        {
          kind: 'vr',
          subject: guardSubject('vr', t.country, t.keyName, ''),
          label: '',
          velocityMax: v.rangeMaxUnverified,
          convMinSends: 0,
          budget: 0,
          spendBudget: 0,
        },
        true,
      ),
      subject({
        kind: 'vc',
        subject: guardSubject('vc', t.country, t.keyName),
        label: t.country,
        velocityMax: v.countryMaxUnverified,
        convMinSends: 0,
        budget: 0,
        spendBudget: 0,
      }),
      subject(
        {
          kind: 'wr',
          subject: guardSubject('wr', t.country, ''),
          label: '',
          velocityMax: 0,
          convMinSends: c.rangeMinSends,
          budget: 0,
          spendBudget: 0,
        },
        true,
      ),
      subject({
        kind: 'wc',
        subject: guardSubject('wc', t.country),
        label: t.country,
        velocityMax: 0,
        convMinSends: c.countryMinSends,
        budget: budgetOf(cfg.dailyPerCountry, t.country),
        spendBudget: Math.round(budgetOf(cfg.dailySpendPerCountry, t.country) * MICROS),
      }),
      subject({
        kind: 'bk',
        subject: guardSubject('bk', t.keyName),
        label: t.keyName,
        velocityMax: 0,
        convMinSends: 0,
        budget: ownSms ?? budgetOf(cfg.dailyPerKey, t.keyName),
        spendBudget: Math.round((ownSpend ?? budgetOf(cfg.dailySpendPerKey, t.keyName)) * MICROS),
      }),
    ].filter((s) => s.velocityMax > 0 || s.convMinSends > 0 || s.budget > 0 || s.spendBudget > 0);
    const country = all.filter((s) => s.kind !== 'bk');
    return {
      ownSms,
      ownSpend,
      price,
      country,
      key: all.find((s) => s.kind === 'bk') ?? null,
      // a country subject takes one send at a time (only a key's budget is leased)
      countryTuples: tuplesOf(country, price, () => 1),
    };
  };
  const planOf = (t: GuardTarget, price: number): Plan => {
    const own = opts.keyBudgets?.(t.keyName) ?? null;
    const ownSms = own?.dailySms ?? null;
    const ownSpend = own?.dailySpend ?? null;
    const id = `${t.country}|${t.keyName}`;
    let plan = plans.get(id);
    if (plan === undefined || plan.price !== price || plan.ownSms !== ownSms || plan.ownSpend !== ownSpend) {
      plan = makePlan(t, price, ownSms, ownSpend);
      if (plans.size >= 10_000) plans.clear();
      plans.set(id, plan);
    }
    return plan;
  };
  const rangeMarks = 'x'.repeat(cfg.rangeDigits);
  /** A send's subjects: its plan's, with its range filled in. */
  const subjects = (t: GuardTarget, plan: Plan): Subject[] => {
    const range = numberRange(t.phoneNumber, cfg.rangeDigits);
    const label = range + rangeMarks;
    const list: Subject[] = plan.country.map((s) =>
      s.ranged
        ? {
            kind: s.kind,
            subject: s.subject + range,
            key: s.key + range,
            label,
            velocityMax: s.velocityMax,
            convMinSends: s.convMinSends,
            budget: s.budget,
            spendBudget: s.spendBudget,
          }
        : s,
    );
    if (plan.key) list.push(plan.key);
    return list;
  };

  /** The subjects by slot: the country's, then the key's (a script call each). */
  const bySlot = (list: Subject[]): Subject[][] => {
    const country = list.filter((s) => s.kind !== 'bk');
    const key = list.filter((s) => s.kind === 'bk');
    return [country, key].filter((g) => g.length > 0);
  };

  const codeOf = (s: Subject, guard: string): GuardCode =>
    guard === 'velocity'
      ? 'prefix_velocity'
      : guard === 'conversion'
        ? 'low_conversion'
        : s.kind === 'bk'
          ? 'key_budget_exhausted'
          : 'country_budget_exhausted';

  const register = async (s: Subject, t: GuardTarget, guard: GuardCode, why: string, until: number) => {
    const id = `${guard}|${s.subject}`;
    const info: Omit<GuardBlock, 'id'> = {
      guard,
      subject: s.subject,
      label: s.label,
      country: s.kind === 'bk' ? '' : t.country,
      callingCode: s.kind === 'bk' ? '' : t.callingCode,
      why,
      until,
    };
    // a script, as every write of the store (redis/script.ts): one call, atomic
    await GUARD_BLOCKED.run(redis, index, { id, endsAt: until, info: JSON.stringify(info) });
  };

  const priceOf = (t: GuardTarget) => Math.round((t.price ?? 0) * MICROS);
  /** Takes a send's counts back: from Redis, and for a key's budget, into its lease. */
  const undoAll = (list: Subject[], t: GuardTarget, now: number) => {
    const day = Math.floor((now || Date.now()) / DAY_MS);
    for (const s of list) if (s.kind === 'bk') addToLease(s, day, 1, priceOf(t));
    return Promise.all(
      bySlot(list.filter((s) => s.kind !== 'bk')).map((group) =>
        GUARD_UNDO.run(
          redis,
          {},
          { now, convBucketMs, convBuckets: CONV_BUCKETS },
          {
            keys: group.map((s) => s.key),
            // in GUARD_UNDO_SUBJECT_ARGS's order
            args: group.flatMap((s) => [
              s.velocityMax > 0 ? 1 : 0,
              s.convMinSends > 0 ? 1 : 0,
              s.budget > 0 || s.spendBudget > 0 ? 1 : 0,
              s.spendBudget > 0 ? priceOf(t) : 0,
            ]),
          },
        ),
      ),
    ).then(() => undefined);
  };

  return {
    async send(t, now = 0) {
      if (!cfg.enabled) return { kind: 'ok', undo: async () => {} };
      const day = Math.floor((now || Date.now()) / DAY_MS);
      const price = priceOf(t);
      const plan = planOf(t, price);
      const all = subjects(t, plan);
      // a key budget with a lease here is counted from it: its slot is not called
      const leased = plan.key && fromLease(plan.key, day, price) ? plan.key : null;
      const groups = bySlot(leased ? all.filter((s) => s !== leased) : all);
      // One lease asked at a time per key: the other sends of the key that come meanwhile take one send each, so a
      // burst does not lease a whole budget into one process.
      const asksLease = plan.key !== null && !leased && !leasing.has(plan.key.subject);
      if (asksLease) leasing.add(plan.key!.subject);
      const settled = await Promise.allSettled(
        groups.map((group) =>
          checkInBatch(
            group,
            group[0]!.kind === 'bk'
              ? tuplesOf(group, price, (s) => (asksLease ? leaseSize(s, price) : 1))
              : // the country slot's tuples are the plan's
                plan.countryTuples,
            now,
          ),
        ),
      ).finally(() => {
        if (asksLease) leasing.delete(plan.key!.subject);
      });
      const at = now || Date.now();
      const notes: Promise<unknown>[] = [];
      let refusal: Extract<GuardOutcome, { kind: 'refused' }> | null = null;
      const counted: Subject[] = leased ? [leased] : [];
      settled.forEach((x, g) => {
        // a slot whose call failed counted nothing (the send is answered 503 below)
        if (x.status !== 'fulfilled') return;
        const r = x.value;
        const group = groups[g]!;
        if (r.outcome === 'refused') {
          // nothing of this slot was counted; a block that started here is listed
          const s = group[Number(r.at) - 1]!;
          const code = codeOf(s, r.guard ?? '');
          const ms = Math.max(1, Number(r.ms));
          if (r.started === '1') notes.push(register(s, t, code, r.why ?? '', at + ms));
          refusal ??= { kind: 'refused', code, retryAfterMs: ms, why: r.why ?? '', subject: s.label };
          return;
        }
        group.forEach((s, i) => {
          counted.push(s);
          // this send is one of those taken; the rest is the key's lease
          if (s.kind === 'bk') addToLease(s, day, Number(r[`t${i + 1}`] ?? 1) - 1, price);
          // a throttle or a filled budget started with this send (rare): list it
          const why = r[`w${i + 1}`] ?? '';
          if (r[`n${i + 1}`] === 'throttled') {
            notes.push(register(s, t, 'low_conversion', why, at + c.throttleSeconds * 1000));
          }
          const filled = r[`f${i + 1}`];
          if (filled) notes.push(register(s, t, codeOf(s, 'budget'), filled, at + Number(r.dayEndMs)));
        });
      });
      const failed = settled.find((x) => x.status === 'rejected');
      // refused, or one slot's call failed while another counted: the counts are taken back (a block started
      // stays listed)
      if (refusal || failed) notes.push(undoAll(counted, t, now));
      if (failed) {
        await Promise.all(notes).catch(() => undefined);
        throw failed.reason;
      }
      if (notes.length > 0) await Promise.all(notes);
      return refusal ?? { kind: 'ok', undo: () => undoAll(counted, t, now) };
    },

    async approved(t, now = 0) {
      if (!cfg.enabled) return;
      const watched = subjects(t, planOf(t, priceOf(t))).filter((s) => s.velocityMax > 0 || s.convMinSends > 0);
      await Promise.all(
        bySlot(watched).map((group) =>
          GUARD_APPROVED.run(
            redis,
            {},
            { now, convBucketMs, convBuckets: CONV_BUCKETS, keepMs },
            {
              keys: group.map((s) => s.key),
              args: group.flatMap((s) => [s.velocityMax > 0 ? 1 : 0, s.convMinSends > 0 ? 1 : 0]),
            },
          ),
        ),
      );
    },

    async blocks(now = Date.now()) {
      const ended = await redis.zrangebyscore(index.blocks, '-inf', now);
      if (ended.length > 0) await Promise.all([redis.zrem(index.blocks, ...ended), redis.hdel(index.info, ...ended)]);
      const ids = await redis.zrangebyscore(index.blocks, now, '+inf');
      if (ids.length === 0) return [];
      const infos = await redis.hmget(index.info, ...ids);
      return ids.flatMap((id, i) => {
        const raw = infos[i];
        return raw ? [{ id, ...(JSON.parse(raw) as Omit<GuardBlock, 'id'>) }] : [];
      });
    },

    async lift(id) {
      const guard = id.slice(0, id.indexOf('|'));
      const subject = id.slice(id.indexOf('|') + 1);
      const removed = await redis.zrem(index.blocks, id);
      await redis.hdel(index.info, id);
      if (removed === 0 || !/^(vr|vc|wr|wc|bk):/.test(subject)) return false;
      await GUARD_LIFT.run(redis, { state: guardKey(ks, subject) }, { guard });
      return true;
    },
  };
}
