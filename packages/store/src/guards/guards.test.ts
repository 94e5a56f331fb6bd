import { EnvReader, readGuardsConfig } from '@otp-gateway/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeRedisClients, type IsolatedStore, isolatedRedis, keysUnder } from '../../../../test/support/redis.js';
import { guardKey, guardSubject } from './guard.record.js';
import { createSendGuards, type GuardTarget, type SendGuards } from './guards.js';
import { GUARD_SEND } from './guards.scripts.js';

/** The guards against a real Redis, time moved by the scripts' `now` (a shifted clock). */
const T0 = Date.UTC(2031, 0, 1, 10, 0, 0);
const MIN = 60_000;
let store: IsolatedStore;
let n = 0;

const guardsWith = (env: Record<string, string>): SendGuards =>
  createSendGuards(store.redis, store.ks, readGuardsConfig(new EnvReader(env), []));
const fr = (range = '+3361234', key = 'shop'): GuardTarget => ({
  keyName: key,
  phoneNumber: `${range}${String(++n % 1000).padStart(3, '0')}`,
  country: 'FR',
  callingCode: '33',
});

beforeEach(async () => {
  store = await isolatedRedis();
});
afterEach(async () => closeRedisClients(store.redis));

describe('velocity per number range', () => {
  it('blocks a range after N sends without verification, for the cool-down; other ranges and keys go on', async () => {
    const g = guardsWith({ GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '5', GUARD_VELOCITY_COOLDOWN_SECONDS: '600' });
    for (let i = 0; i < 5; i++) expect((await g.send(fr(), T0 + i)).kind).toBe('ok');
    const refused = await g.send(fr(), T0 + 10);
    expect(refused).toMatchObject({ kind: 'refused', code: 'prefix_velocity', retryAfterMs: 600_000 });
    expect(refused.kind === 'refused' && refused.why).toContain('5 codes sent without a verification');
    expect(await g.send(fr(), T0 + 5 * MIN)).toMatchObject({ code: 'prefix_velocity' });
    expect((await g.send(fr('+3361299'), T0 + 20)).kind).toBe('ok');
    expect((await g.send(fr('+3361234', 'other'), T0 + 20)).kind).toBe('ok');
    // the block is listed, with its reason, until it ends
    const blocks = await g.blocks(T0 + 30);
    expect(blocks).toEqual([
      expect.objectContaining({ guard: 'prefix_velocity', label: '+3361234xxx', callingCode: '33' }),
    ]);
    expect((await g.send(fr(), T0 + 10 + 600_000)).kind).toBe('ok');
  });

  it('never blocks a send-then-verify flow, however long it runs', async () => {
    const g = guardsWith({ GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '3' });
    for (let i = 0; i < 50; i++) {
      const t = fr();
      expect((await g.send(t, T0 + i * 1000)).kind).toBe('ok');
      await g.approved(t, T0 + i * 1000 + 500);
    }
  });

  it('a refused send counts nowhere, and lifting a block starts its counters again', async () => {
    const g = guardsWith({ GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '2', GUARD_VELOCITY_COUNTRY_MAX_UNVERIFIED: '4' });
    await g.send(fr(), T0);
    await g.send(fr(), T0);
    for (let i = 0; i < 20; i++) expect(await g.send(fr(), T0 + i)).toMatchObject({ code: 'prefix_velocity' });
    // the country counted only the two sends that went: two more ranges' worth still go
    expect((await g.send(fr('+3361299'), T0 + 50)).kind).toBe('ok');
    expect((await g.send(fr('+3361299'), T0 + 50)).kind).toBe('ok');
    expect(await g.send(fr('+3361288'), T0 + 60)).toMatchObject({ code: 'prefix_velocity' });
    const [block] = (await g.blocks(T0 + 70)).filter((b) => b.label === '+3361234xxx');
    expect(await g.lift(block!.id)).toBe(true);
    expect((await g.blocks(T0 + 70)).map((b) => b.label)).toEqual(['FR']);
  });
});

describe('what the guards keep', () => {
  it('every subject hash they write expires, kept at least two days after its last send (1.5 times at a renewal)', async () => {
    const g = guardsWith({
      GUARD_DAILY_SMS_PER_KEY: '*=1000',
      GUARD_DAILY_SMS_PER_COUNTRY: 'FR=3',
      GUARD_CONVERSION_RANGE_MIN_SENDS: '5',
    });
    const now = Date.now();
    for (let i = 0; i < 3; i++) expect((await g.send(fr('+3361234'), now + i)).kind).toBe('ok');
    // refused by the country's budget (its last subject): the new range's conversion hash its judgement created
    // must expire too
    expect(await g.send(fr('+3361299'), now + 10)).toMatchObject({ code: 'country_budget_exhausted' });
    const keys = await keysUnder(store.redis, store.prefix);
    // the first range's and the country's (velocity and conversion), the key's budget, the second range's conversion
    expect(keys.filter((k) => k.includes(':g:'))).toHaveLength(6);
    for (const key of keys.filter((k) => k.includes(':g:'))) {
      const ttl = await store.redis.pttl(key);
      expect(ttl, key).toBeGreaterThan(2 * 86_400_000 - 60_000);
      expect(ttl, key).toBeLessThanOrEqual(3 * 86_400_000);
    }
  });
});

describe('conversion watch', () => {
  it('throttles a range whose approved share falls under the threshold, and lets one send through per interval', async () => {
    const g = guardsWith({
      GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '0',
      GUARD_CONVERSION_RANGE_MIN_SENDS: '10',
      GUARD_CONVERSION_MIN_PERCENT: '50',
      GUARD_CONVERSION_WINDOW_SECONDS: '3600',
      GUARD_CONVERSION_THROTTLE_SECONDS: '60',
    });
    for (let i = 0; i < 12; i++) {
      const t = fr();
      expect((await g.send(t, T0 + i)).kind).toBe('ok');
      if (i % 4 === 0) await g.approved(t, T0 + i);
    }
    // sends of the newest bucket (5 min) are not judged yet
    expect((await g.send(fr(), T0 + MIN)).kind).toBe('ok');
    const later = T0 + 6 * MIN;
    expect((await g.send(fr(), later)).kind).toBe('ok');
    const refused = await g.send(fr(), later + 1000);
    expect(refused).toMatchObject({ kind: 'refused', code: 'low_conversion' });
    expect(refused.kind === 'refused' && refused.why).toMatch(/approved of .* codes sent, under 50%/);
    expect((await g.send(fr(), later + 61_000)).kind).toBe('ok');
  });
});

describe('a send whose check failed in one slot', () => {
  it("regression: takes back what the other slot counted (a key budget's call failed, the country's counted)", async () => {
    const env = { GUARD_DAILY_SMS_PER_COUNTRY: 'FR=1', GUARD_DAILY_SMS_PER_KEY: '*=100' };
    let failKeySlot = true;
    const flaky = new Proxy(store.redis, {
      get(target, name, receiver) {
        const value = Reflect.get(target, name, receiver);
        if (name !== 'evalsha' || typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          // GUARD_SEND's KEYS: the key budget's subject is `g:bk:<key>`
          if (failKeySlot && args[0] === GUARD_SEND.sha && args.some((a) => String(a).includes(':g:bk:'))) {
            return Promise.reject(new Error('CLUSTERDOWN The cluster is down'));
          }
          return value.apply(target, args);
        };
      },
    });
    const g = createSendGuards(flaky as never, store.ks, readGuardsConfig(new EnvReader(env), []));
    await expect(g.send(fr(), T0)).rejects.toThrow('CLUSTERDOWN');
    failKeySlot = false;
    // France's one SMS of the day is still there
    expect((await g.send(fr(), T0 + 1)).kind).toBe('ok');
    expect(await g.send(fr(), T0 + 2)).toMatchObject({ code: 'country_budget_exhausted' });
  });
});

describe('lifting a block', () => {
  it("regression: lifting a country's conversion throttle keeps its day's budget count (it reset it)", async () => {
    const g = guardsWith({
      GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '0',
      GUARD_VELOCITY_COUNTRY_MAX_UNVERIFIED: '0',
      GUARD_CONVERSION_COUNTRY_MIN_SENDS: '4',
      GUARD_CONVERSION_MIN_PERCENT: '50',
      GUARD_CONVERSION_WINDOW_SECONDS: '3600',
      GUARD_CONVERSION_THROTTLE_SECONDS: '60',
      GUARD_DAILY_SMS_PER_COUNTRY: 'FR=8',
    });
    const ranges = ['+3361111', '+3361222', '+3361333', '+3361444', '+3361555', '+3361666', '+3361777', '+3361888'];
    for (let i = 0; i < 5; i++) expect((await g.send(fr(ranges[i]), T0 + i)).kind).toBe('ok');
    // judged once their bucket is past: none approved, the country is throttled (the first send goes)
    const later = T0 + 6 * MIN;
    expect((await g.send(fr(ranges[5]), later)).kind).toBe('ok');
    expect(await g.send(fr(ranges[6]), later + 1)).toMatchObject({ code: 'low_conversion' });
    const [throttle] = (await g.blocks(later + 2)).filter((b) => b.guard === 'low_conversion');
    expect(await g.lift(throttle!.id)).toBe(true);
    // 6 of the day's 8 were sent: two more go, the ninth is past the budget
    expect((await g.send(fr(ranges[6]), later + 3)).kind).toBe('ok');
    expect((await g.send(fr(ranges[7]), later + 4)).kind).toBe('ok');
    expect(await g.send(fr(ranges[0]), later + 5)).toMatchObject({ code: 'country_budget_exhausted' });
  });
});

/** Guards whose script calls are counted on the way to Redis. */
const countingGuards = (env: Record<string, string>) => {
  let calls = 0;
  const counting = new Proxy(store.redis, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (name !== 'evalsha' || typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (args[0] === GUARD_SEND.sha) calls++;
        return value.apply(target, args);
      };
    },
  });
  return { g: createSendGuards(counting, store.ks, readGuardsConfig(new EnvReader(env), [])), calls: () => calls };
};

describe('sends that arrive together', () => {
  // Sends that reach the guards in one turn of the event loop are checked by one script call: each as if alone, in
  // their order, seeing the counts of those before it.
  it('a range limit and a budget hold within one call as they do one send at a time', async () => {
    const env = {
      GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '20',
      GUARD_VELOCITY_COOLDOWN_SECONDS: '600',
      GUARD_DAILY_SMS_PER_COUNTRY: 'DE=5,*=1000',
    };
    const { g, calls } = countingGuards(env);
    const together = (targets: GuardTarget[], at: number) => Promise.all(targets.map((t) => g.send(t, at)));
    const range = await together(
      Array.from({ length: 30 }, () => fr()),
      T0,
    );
    // one call for the country's slot, one for the key's budget (which leases sends for the next ones)
    expect(calls()).toBe(2);
    expect(range.filter((r) => r.kind === 'ok')).toHaveLength(20);
    // the 21st starts the block, the rest find it
    expect(range.slice(20)).toEqual(Array(10).fill(expect.objectContaining({ code: 'prefix_velocity' })));
    expect(await g.blocks(T0 + 1)).toEqual([expect.objectContaining({ label: '+3361234xxx' })]);
    // the range's count is the 20 that went (the block reset it to 0); the country's too
    const vr = await store.redis.hmget(guardKey(store.ks, guardSubject('vr', 'FR', 'shop', '+3361234')), 'vu', 'blk');
    expect(vr).toEqual(['0', String(T0 + 600_000)]);
    const vc = await store.redis.hget(guardKey(store.ks, guardSubject('vc', 'FR', 'shop')), 'vu');
    expect(vc).toBe('20');

    const de = (i: number): GuardTarget => ({
      keyName: 'shop',
      phoneNumber: `+4915112${String(i).padStart(5, '0')}`,
      country: 'DE',
      callingCode: '49',
    });
    const budget = await together(
      Array.from({ length: 8 }, (_, i) => de(i * 1000)),
      T0,
    );
    expect(budget.map((r) => (r.kind === 'ok' ? 'ok' : r.code))).toEqual([
      ...Array(5).fill('ok'),
      ...Array(3).fill('country_budget_exhausted'),
    ]);
    // one script call for the eight (the key's budget from its lease), and what it counted is what went
    expect(calls()).toBe(3);
    expect(await store.redis.hget(guardKey(store.ks, guardSubject('wc', 'DE')), 'bn')).toBe('5');
  });

  it('a burst larger than one call takes is split into calls, each send judged once, in order', async () => {
    const { g, calls } = countingGuards({
      GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '0',
      GUARD_DAILY_SMS_PER_COUNTRY: 'FR=450',
    });
    const burst = await Promise.all(
      Array.from({ length: 500 }, (_, i) => g.send(fr(`+33612${String(i % 50).padStart(2, '0')}`), T0)),
    );
    expect(burst.map((r) => (r.kind === 'ok' ? 'ok' : r.code))).toEqual([
      ...Array(450).fill('ok'),
      ...Array(50).fill('country_budget_exhausted'),
    ]);
    expect(await store.redis.hget(guardKey(store.ks, guardSubject('wc', 'FR')), 'bn')).toBe('450');
    // 200 + 200 + 100 for the country, and as many for the key's budget (no send of the burst found a lease yet)
    expect(calls()).toBe(6);
    // one lease asked (50 sends), the 499 other sends of the burst counted one each (a lease each would have been
    // 25,000); the 50 the country refused went back to this process's lease, not to Redis
    expect(await store.redis.hget(guardKey(store.ks, guardSubject('bk', 'shop')), 'bn')).toBe(String(50 + 499));
  });

  it('a throttled range lets one of the sends that arrive together go', async () => {
    const g = guardsWith({
      GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '0',
      GUARD_CONVERSION_RANGE_MIN_SENDS: '10',
      GUARD_CONVERSION_MIN_PERCENT: '50',
      GUARD_CONVERSION_THROTTLE_SECONDS: '60',
    });
    for (let i = 0; i < 12; i++) expect((await g.send(fr(), T0 + i)).kind).toBe('ok');
    const later = T0 + 6 * MIN;
    const sends = await Promise.all(Array.from({ length: 6 }, () => g.send(fr(), later)));
    expect(sends.map((r) => (r.kind === 'ok' ? 'ok' : r.code))).toEqual(['ok', ...Array(5).fill('low_conversion')]);
  });
});

describe('conversion window running sums', () => {
  it("equal the sums of the window's buckets after sends, approvals and undos spread over hours, gaps included", async () => {
    const g = guardsWith({
      GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '0',
      GUARD_VELOCITY_COUNTRY_MAX_UNVERIFIED: '0',
      GUARD_CONVERSION_RANGE_MIN_SENDS: '1000000',
      GUARD_CONVERSION_COUNTRY_MIN_SENDS: '0',
      GUARD_CONVERSION_WINDOW_SECONDS: '3600',
    });
    const bucketMs = 300_000; // 3600 s in 12 buckets
    const key = guardKey(store.ks, guardSubject('wr', 'FR', '+3361234'));
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let t = T0;
    for (let step = 0; step < 400; step++) {
      // mostly small moves, sometimes a bucket or two, now and then past the whole window
      const r = rand();
      t += r < 0.9 ? Math.floor(rand() * 20_000) : r < 0.98 ? bucketMs * (1 + Math.floor(rand() * 3)) : 5 * 3_600_000;
      const target = fr('+3361234');
      const sent = await g.send(target, t);
      if (sent.kind !== 'ok') throw new Error('refused');
      if (rand() < 0.3) await g.approved(target, t);
      if (rand() < 0.1) await sent.undo();
      const h = await store.redis.hgetall(key);
      const cur = Math.floor(t / bucketMs);
      let judged = 0;
      let approved = 0;
      for (let i = cur - 12; i <= cur; i++) {
        if (i < cur) judged += Number(h[`s${i}`] ?? 0);
        approved += Number(h[`a${i}`] ?? 0);
      }
      expect([Number(h.cb), Number(h.cj), Number(h.ca)]).toEqual([cur, judged, approved]);
      // no bucket older than the window is kept
      const oldest = Math.min(
        ...Object.keys(h)
          .filter((f) => /^[sa]\d+$/.test(f))
          .map((f) => Number(f.slice(1))),
      );
      expect(oldest).toBeGreaterThanOrEqual(cur - 12);
    }
  });
});

describe('daily budgets', () => {
  it('refuses past the country budget until the next UTC day; other countries and keys go on', async () => {
    const g = guardsWith({ GUARD_DAILY_SMS_PER_COUNTRY: 'DE=3,*=100', GUARD_DAILY_SMS_PER_KEY: 'small=2,*=1000' });
    const de = (): GuardTarget => ({
      keyName: 'shop',
      phoneNumber: `+491512123${++n}`,
      country: 'DE',
      callingCode: '49',
    });
    for (let i = 0; i < 3; i++) expect((await g.send(de(), T0)).kind).toBe('ok');
    const refused = await g.send(de(), T0);
    const midnight = Date.UTC(2031, 0, 2);
    expect(refused).toMatchObject({ kind: 'refused', code: 'country_budget_exhausted', retryAfterMs: midnight - T0 });
    expect((await g.send(fr(), T0)).kind).toBe('ok');
    expect((await g.blocks(T0)).map((b) => b.guard)).toEqual(['country_budget_exhausted']);
    expect((await g.send(de(), midnight)).kind).toBe('ok');

    expect((await g.send(fr('+3361299', 'small'), T0)).kind).toBe('ok');
    expect((await g.send(fr('+3361299', 'small'), T0)).kind).toBe('ok');
    expect(await g.send(fr('+3361299', 'small'), T0)).toMatchObject({ code: 'key_budget_exhausted' });
  });

  it('refuses past a spend budget (money, at the expected price of each send) until the next UTC day; undo gives it back', async () => {
    const g = createSendGuards(
      store.redis,
      store.ks,
      readGuardsConfig(
        new EnvReader({ GUARD_DAILY_SPEND_PER_COUNTRY: 'FR=0.20', GUARD_DAILY_SPEND_PER_KEY: 'small=0.1' }),
        [],
      ),
      { currency: 'EUR' },
    );
    const priced = (t: GuardTarget, price: number): GuardTarget => ({ ...t, price });
    // 0.07 each: three make 0.21, past 0.20
    expect((await g.send(priced(fr(), 0.07), T0)).kind).toBe('ok');
    const second = await g.send(priced(fr(), 0.07), T0);
    expect(second.kind).toBe('ok');
    // the next one at this price would pass the budget: the block is listed already
    expect((await g.blocks(T0)).map((b) => [b.guard, b.why])).toEqual([
      ['country_budget_exhausted', '0.14 EUR spent today, the daily budget is 0.20 EUR'],
    ]);
    const refused = await g.send(priced(fr(), 0.07), T0);
    expect(refused).toMatchObject({ kind: 'refused', code: 'country_budget_exhausted' });
    expect(refused.kind === 'refused' && refused.why).toBe('0.14 EUR spent today, the daily budget is 0.20 EUR');
    // a cheaper SMS still fits; an SMS of unknown price (0) is not weighed
    expect((await g.send(priced(fr(), 0.05), T0)).kind).toBe('ok');
    expect((await g.send(priced(fr(), 0), T0)).kind).toBe('ok');
    expect(await g.send(priced(fr(), 0.02), T0)).toMatchObject({ code: 'country_budget_exhausted' });
    // a send taken back (not created after all) gives its price back
    if (second.kind === 'ok') await second.undo();
    expect((await g.send(priced(fr(), 0.07), T0)).kind).toBe('ok');
    // the next UTC day starts from nothing
    expect((await g.send(priced(fr(), 0.07), Date.UTC(2031, 0, 2))).kind).toBe('ok');
    // per key: 0.1 for `small`
    expect((await g.send(priced(fr('+3361299', 'small'), 0.07), T0)).kind).toBe('ok');
    expect(await g.send(priced(fr('+3361299', 'small'), 0.07), T0)).toMatchObject({ code: 'key_budget_exhausted' });
  });

  it('a key budget counted in leases by several API processes: never passed, short of it by at most a lease each', async () => {
    const env = {
      GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '0',
      GUARD_VELOCITY_COUNTRY_MAX_UNVERIFIED: '0',
      GUARD_CONVERSION_RANGE_MIN_SENDS: '0',
      GUARD_CONVERSION_COUNTRY_MIN_SENDS: '0',
      // 1/200 of 1000: leases of 5
      GUARD_DAILY_SMS_PER_KEY: 'shop=1000',
    };
    const processes = [guardsWith(env), guardsWith(env), guardsWith(env)];
    let accepted = 0;
    let undone = 0;
    for (let i = 0; i < 1200; i++) {
      const r = await processes[i % 3]!.send(fr(`+33612${String(i).padStart(2, '0')}`), T0 + i);
      if (r.kind === 'ok') {
        accepted++;
        // now and then a send is taken back (a per-number rule refused it): its count goes back to the lease
        if (i % 50 === 0) {
          await r.undo();
          undone++;
        }
      } else expect(r).toMatchObject({ code: 'key_budget_exhausted' });
    }
    expect(accepted - undone).toBeLessThanOrEqual(1000);
    expect(accepted - undone).toBeGreaterThanOrEqual(1000 - 3 * 5);
    // Redis counted every send that went, and what the leases still hold
    const counted = Number(await store.redis.hget(guardKey(store.ks, guardSubject('bk', 'shop')), 'bn'));
    expect(counted).toBe(1000);
  });

  it("a key's own budget is read at each send: one lowered while the process runs (a reload) holds at once", async () => {
    let own: { dailySms: number | null; dailySpend: number | null } = { dailySms: 100, dailySpend: null };
    const g = createSendGuards(store.redis, store.ks, readGuardsConfig(new EnvReader({}), []), {
      keyBudgets: () => own,
    });
    for (let i = 0; i < 3; i++) expect((await g.send(fr('+3361234', 'shop'), T0 + i)).kind).toBe('ok');
    own = { dailySms: 3, dailySpend: null };
    expect(await g.send(fr('+3361234', 'shop'), T0 + 10)).toMatchObject({
      code: 'key_budget_exhausted',
      why: '3 SMS today, the daily budget is 3',
    });
    own = { dailySms: null, dailySpend: null };
    // back to GUARD_DAILY_SMS_PER_KEY's default
    expect((await g.send(fr('+3361234', 'shop'), T0 + 20)).kind).toBe('ok');
  });

  it('a send the key budget refuses is taken back from the country (another slot)', async () => {
    const g = guardsWith({ GUARD_DAILY_SMS_PER_COUNTRY: 'FR=2', GUARD_DAILY_SMS_PER_KEY: 'small=1,*=100' });
    expect((await g.send(fr('+3361234', 'small'), T0)).kind).toBe('ok');
    expect(await g.send(fr('+3361234', 'small'), T0)).toMatchObject({ code: 'key_budget_exhausted' });
    // the refused send left the country's count at 1: one more from another key fits, then the country is full
    expect((await g.send(fr('+3361234', 'big'), T0)).kind).toBe('ok');
    expect(await g.send(fr('+3361234', 'big'), T0)).toMatchObject({ code: 'country_budget_exhausted' });
  });

  it('a send the per-number rules refused after the guards counted it is taken back', async () => {
    const g = guardsWith({ GUARD_DAILY_SMS_PER_COUNTRY: '*=1' });
    const first = await g.send(fr(), T0);
    if (first.kind !== 'ok') throw new Error('refused');
    await first.undo();
    expect((await g.send(fr(), T0)).kind).toBe('ok');
    expect((await g.send(fr(), T0)).kind).toBe('refused');
  });
});
