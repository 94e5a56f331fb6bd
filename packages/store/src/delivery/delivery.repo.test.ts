import { decryptCode, deriveKeys, newOtpId, type ProviderId } from '@otp-gateway/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nextPhone, type OtpFixtures, otpFixtures } from '../../../../test/support/otp-fixtures.js';
import { TEST_SECRET } from '../../../../test/support/processes.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from '../../../../test/support/redis.js';
import { costJobId, resendJobId } from '../jobs/send-jobs.js';
import { DUE, OTP_FIELDS, otpKeys } from '../otp/otp.record.js';
import { toView } from '../otp/otp.view.js';
import {
  type CircuitSettings,
  type Circuits,
  circuitKey,
  createCircuits,
  FIRST_PAUSE_MS,
  MAX_PAUSE_MS,
} from './circuit.js';
import { createDeliveryRepo, type DeliveryRepo } from './delivery.repo.js';
import { createMessageIndex, type MessageIndex, messageKeys } from './messages.js';
import { createReportRepo, type DeliveryReport, parseDeliveryReport } from './reports.js';
import { sweepDue } from './sweep.js';

// Every script runs on the test's clock: T0 is a whole second (the per-second rate windows below are exact) and far
// from the Redis node's clock, so a step that read the node's TIME instead would show.
const T0 = 1_800_000_000_000;
let t = T0;
const now = () => t;
const at = (ms: number) => {
  t = T0 + ms;
};

const order = ['twilio', 'octopush'] as const satisfies readonly ProviderId[];
// trustMs 0: every begin picks, as these tests of the policy expect (the trust has tests of its own below)
const POLICY: CircuitSettings = { failureThreshold: 2, cooldownMs: 10_000, ratePerSecond: {}, trustMs: 0 };
const RECEIPT_AFTER_MS = 120_000;

let store: IsolatedStore;
let fixtures: OtpFixtures;
let messages: MessageIndex;
let circuits: Circuits;
let repo: DeliveryRepo;

const deliveryRepo = (c: Circuits) =>
  createDeliveryRepo(
    { redis: store.redis, ks: store.ks, circuits: c, messages, now },
    { leaseMs: 7000, receiptAfterMs: RECEIPT_AFTER_MS, messageTtlMs: 600_000 },
  );

const accept = (id: string, attempt: number, provider: ProviderId, messageId: string, hadFailures = false) =>
  repo.accepted(id, attempt, provider, { messageId, providerStatus: 'queued', hadFailures });

const view = async (id: string) => toView(id, await fixtures.record(id), now());
const outcomes = async (id: string) => (await view(id)).attempts.map((a) => a.outcome);

/** The partition of an OTP (its due set), so the sweep reads only the test's own. */
const partitionOf = (otpId: string) => Number.parseInt(otpId.slice(4, 7), 16);
const noReceipts: ProviderId[] = [];
const sweep = (...ids: string[]) =>
  sweepDue(
    {
      redis: store.redis,
      ks: store.ks,
      queues: fixtures.queues,
      circuits: circuits,
      onNoReceipt: (p) => noReceipts.push(p),
      now,
    },
    { partitions: [...new Set(ids.map(partitionOf))] },
  );

beforeEach(async () => {
  t = T0;
  noReceipts.length = 0;
  store = await isolatedRedis();
  fixtures = otpFixtures(store, { now });
  messages = createMessageIndex(store.redis, store.ks);
  circuits = createCircuits(store.redis, store.ks, POLICY);
  repo = deliveryRepo(circuits);
});

afterEach(async () => {
  await fixtures.close();
  await closeRedisClients(store.redis);
});

describe('delivery repo', () => {
  it('follows the route of the number country (SMS_ROUTES), failing over within it', async () => {
    const routes = new Map([
      ['FR', ['octopush', 'twilio'] as const],
      ['DE', ['twilio'] as const],
    ]);
    const { id } = await fixtures.created({ phoneNumber: nextPhone() });
    expect(await repo.begin(id, order, 5000, routes)).toMatchObject({ kind: 'go', provider: 'octopush' });
    await repo.failed(id, 1, 'octopush', 'misconfigured', 'x');
    expect(await repo.begin(id, order, 5000, routes)).toMatchObject({ kind: 'go', attempt: 2, provider: 'twilio' });
    // a country without a route of its own: the default order
    const other = await fixtures.created({ phoneNumber: nextPhone() });
    expect(await repo.begin(other.id, order, 5000, new Map([['DE', ['octopush'] as const]]))).toMatchObject({
      provider: 'twilio',
    });
    // an API key's own routes (TENANTS_FILE) come first: for the country, then its `*`, then SMS_ROUTES
    const mine = await fixtures.created({ phoneNumber: nextPhone() });
    const keyRoutes = (extra: [string, readonly ('twilio' | 'octopush')[]][]) =>
      new Map([['FR', ['twilio'] as const], ...extra]);
    expect(await repo.begin(mine.id, order, 5000, keyRoutes([['k|FR', ['octopush']]]))).toMatchObject({
      provider: 'octopush',
    });
    const star = await fixtures.created({ phoneNumber: nextPhone() });
    expect(await repo.begin(star.id, order, 5000, keyRoutes([['k|*', ['octopush']]]))).toMatchObject({
      provider: 'octopush',
    });
    const otherKey = await fixtures.created({ phoneNumber: nextPhone() });
    expect(await repo.begin(otherKey.id, order, 5000, keyRoutes([['shop|FR', ['octopush']]]))).toMatchObject({
      provider: 'twilio',
    });
  });

  it('records an attempt, then its acceptance, and indexes the message id', async () => {
    const phoneNumber = nextPhone();
    const { id, exp } = await fixtures.created({ phoneNumber });
    const b = await repo.begin(id, order, 5000);
    expect(b).toEqual({
      kind: 'go',
      attempt: 1,
      provider: 'twilio',
      requestAttempt: 1,
      hadFailures: false,
      otp: {
        phoneNumber,
        locale: 'fr',
        sealedCode: expect.any(String),
        expiresAt: exp,
        callingCode: '33',
        country: 'FR',
        keyName: 'k',
        testOutcome: null,
      },
    });
    // what the worker sends is the OTP's code
    if (b.kind !== 'go') throw new Error('not begun');
    expect(decryptCode(deriveKeys(TEST_SECRET), id, b.otp.sealedCode)).toBe('123456');
    expect((await view(id)).deliveryStatus).toBe('sending');

    at(10);
    expect(await accept(id, 1, 'twilio', 'SM1')).toEqual([]);
    const v = await view(id);
    expect(v).toMatchObject({ status: 'pending', deliveryStatus: 'sent', provider: 'twilio' });
    expect(v.attempts).toEqual([
      expect.objectContaining({
        n: 1,
        provider: 'twilio',
        outcome: 'accepted',
        messageId: 'SM1',
        providerStatus: 'queued',
        updatedAt: new Date(T0 + 10).toISOString(),
      }),
    ]);
    // the provider's reports find the attempt
    expect(await messages.lookup('twilio', 'SM1', '{}')).toEqual({ otpId: id, attempt: 1 });
    // A job picked up again after the send was recorded sends nothing.
    at(20);
    expect(await repo.begin(id, order, 5000)).toEqual({ kind: 'stop', reason: 'done' });
  });

  it("puts the cost a provider tells later on the accepted attempt, in place of the price table's", async () => {
    const { id } = await fixtures.created({ phoneNumber: nextPhone() });
    const b = await repo.begin(id, order, 5000);
    if (b.kind !== 'go') throw new Error('not begun');
    // before its acceptance, the attempt has no cost to replace
    expect(await repo.costKnown(id, 1, { amount: 0.0079, currency: 'USD' })).toBe(false);
    await repo.accepted(id, 1, 'twilio', {
      messageId: 'SM1',
      providerStatus: 'queued',
      hadFailures: false,
      cost: { amount: 0.05, currency: 'EUR' },
    });
    expect((await view(id)).attempts[0]).toMatchObject({ cost: 0.05, currency: 'EUR' });
    expect(await repo.costKnown(id, 1, { amount: 0.0079, currency: 'USD' })).toBe(true);
    expect((await view(id)).attempts[0]).toMatchObject({ outcome: 'accepted', cost: 0.0079, currency: 'USD' });
    // a record gone (its retention over) is not brought back
    await store.redis.del(otpKeys(store.ks, id).otp);
    expect(await repo.costKnown(id, 1, { amount: 0.0079, currency: 'USD' })).toBe(false);
    expect(await store.redis.exists(otpKeys(store.ks, id).otp)).toBe(0);
  });

  it('lists the cost check of an attempt whose provider tells it later; the sweep queues its cost job when due', async () => {
    const { id } = await fixtures.created({ phoneNumber: nextPhone() });
    const b = await repo.begin(id, order, 5000);
    if (b.kind !== 'go') throw new Error('not begun');
    await repo.accepted(id, 1, 'twilio', {
      messageId: 'SM9',
      providerStatus: 'queued',
      hadFailures: false,
      cost: { amount: 0.05, currency: 'EUR' },
      costAfterMs: 60_000,
    });
    const job = () => fixtures.queues.forOtp(id).getJob(costJobId(id, 1));
    at(59_000);
    await sweep(id);
    expect(await job()).toBeUndefined();
    at(61_000);
    await sweep(id);
    const queued = await job();
    expect(queued?.name).toBe('cost');
    expect(queued?.data).toEqual({
      otpId: id,
      cost: {
        attempt: 1,
        provider: 'twilio',
        messageId: 'SM9',
        callingCode: '33',
        table: { amount: 0.05, currency: 'EUR' },
      },
    });
    // the entry is gone: a later round queues nothing more
    await queued?.remove();
    at(200_000);
    await sweep(id);
    expect(await job()).toBeUndefined();
  });

  it('resumes an attempt a dead worker left in flight: a new record, same provider, same request id', async () => {
    const { id } = await fixtures.created();
    await repo.begin(id, order, 5000);
    // while the send's lease runs, another job of the OTP waits for its outcome
    at(1);
    expect(await repo.begin(id, order, 5000)).toEqual({ kind: 'busy', ms: 6999 });
    at(7001);
    expect(await repo.begin(id, ['octopush', 'twilio'], 5000)).toMatchObject({
      kind: 'go',
      attempt: 2,
      provider: 'twilio',
      requestAttempt: 1,
    });
    // interrupted again: the request id still comes from the first attempt
    at(14_002);
    expect(await repo.begin(id, order, 5000)).toMatchObject({ kind: 'go', attempt: 3, requestAttempt: 1 });
    expect(await outcomes(id)).toEqual(['interrupted', 'interrupted', 'sending']);
  });

  it('does not resume an interrupted attempt once the OTP is about to expire', async () => {
    const { id } = await fixtures.created({ ttlMs: 10_000 });
    expect(await repo.begin(id, order, 5000)).toMatchObject({ kind: 'go', attempt: 1 });
    at(7001);
    expect(await repo.begin(id, order, 5000)).toEqual({ kind: 'stop', reason: 'too_late' });
    expect(await outcomes(id)).toEqual(['interrupted']);
  });

  it('keeps an OTP usable when its message went out but no provider can resend it', async () => {
    const s1 = await fixtures.created();
    const s2 = await fixtures.created();
    await repo.begin(s1.id, ['twilio'], 5000);
    await accept(s1.id, 1, 'twilio', 'SMs1');
    await repo.begin(s2.id, order, 5000);
    await accept(s2.id, 1, 'twilio', 'SMs2');
    at(RECEIPT_AFTER_MS);
    expect(await sweep(s1.id, s2.id)).toMatchObject({ receiptTimeouts: 2, events: 0, errors: 0 });

    // s1 may only go through Twilio, which already had its chance
    at(RECEIPT_AFTER_MS + 1);
    expect(await repo.begin(s1.id, ['twilio'], 5000)).toEqual({ kind: 'stop', reason: 'exhausted' });
    at(RECEIPT_AFTER_MS + 2);
    expect(await repo.giveUp(s1.id)).toEqual({ ended: false, callingCode: '33' });
    expect((await view(s1.id)).status).toBe('pending');
    // the message that went out counts again
    expect((await fixtures.record(s1.id))[OTP_FIELDS.acc]).toBe('1');
    await fixtures.approve(s1.id);

    // and a permanent refusal from the next provider does not end it either
    at(RECEIPT_AFTER_MS + 3);
    expect(await repo.begin(s2.id, order, 5000)).toMatchObject({ kind: 'go', attempt: 2, provider: 'octopush' });
    expect((await view(s2.id)).deliveryStatus).toBe('sending');
    expect(await repo.failed(s2.id, 2, 'octopush', 'permanent', '117')).toEqual({ circuit: 'closed', ended: false });
    // regression: the OTP read pending/sending until expiry; the first message's status is what is known
    expect(await view(s2.id)).toMatchObject({ status: 'pending', deliveryStatus: 'sent', provider: 'twilio' });
    await fixtures.approve(s2.id);
  });

  it('a refusal (misconfigured) is skipped for the OTP but does not count against the provider', async () => {
    for (let i = 0; i < 3; i++) {
      const { id } = await fixtures.created();
      expect(await repo.begin(id, order, 5000)).toMatchObject({ kind: 'go', provider: 'twilio' });
      expect(await repo.failed(id, 1, 'twilio', 'misconfigured', '21408')).toEqual({ circuit: 'closed', ended: false });
    }
    const m4 = await fixtures.created();
    at(1);
    expect(await repo.begin(m4.id, order, 5000)).toMatchObject({ kind: 'go', provider: 'twilio', hadFailures: false });
  });

  it('moves to the next provider after a failure, and skips a provider that refused us', async () => {
    const { id } = await fixtures.created();
    await repo.begin(id, order, 5000);
    await repo.failed(id, 1, 'twilio', 'misconfigured', '20003');
    at(1);
    expect(await repo.begin(id, order, 5000)).toMatchObject({ kind: 'go', attempt: 2, provider: 'octopush' });
    at(2);
    await repo.failed(id, 2, 'octopush', 'retryable', '500');
    // twilio refused us for good; octopush failed transiently: it is tried again.
    at(3);
    expect(await repo.begin(id, order, 5000)).toMatchObject({ kind: 'go', attempt: 3, provider: 'octopush' });
    at(4);
    await repo.failed(id, 3, 'octopush', 'misconfigured', '102');
    at(5);
    expect(await repo.begin(id, order, 5000)).toEqual({ kind: 'stop', reason: 'exhausted' });
  });

  it('opens a circuit after repeated failures for every OTP, lets one probe through after the cool-down', async () => {
    const failures: string[] = [];
    for (let i = 0; i < 2; i++) {
      const { id } = await fixtures.created();
      await repo.begin(id, ['twilio'], 5000);
      failures.push((await repo.failed(id, 1, 'twilio', 'retryable', '503')).circuit);
    }
    expect(failures).toEqual(['closed', 'open']);
    const c = await fixtures.created();
    at(1);
    expect(await repo.begin(c.id, ['twilio'], 5000)).toEqual({ kind: 'wait', ms: 9_999, expiresAt: c.exp });
    expect(await repo.begin(c.id, order, 5000)).toMatchObject({ kind: 'go', provider: 'octopush' });

    const d = await fixtures.created();
    const e = await fixtures.created();
    at(10_001);
    expect(await repo.begin(d.id, ['twilio'], 5000)).toMatchObject({
      kind: 'go',
      provider: 'twilio',
      hadFailures: true,
    });
    // while the probe is out, others wait
    at(10_002);
    expect(await repo.begin(e.id, ['twilio'], 5000)).toMatchObject({ kind: 'wait' });
    at(10_003);
    await accept(d.id, 1, 'twilio', 'SMd', true);
    at(10_004);
    expect(await repo.begin(e.id, ['twilio'], 5000)).toMatchObject({ kind: 'go', provider: 'twilio' });
  });

  describe('trusted providers (circuit-trust.ts)', () => {
    // PICK counts each pick in the circuit's rate fields: a send that skipped it leaves them alone
    const picks = async (p: ProviderId) => Number((await store.redis.hget(circuitKey(store.ks, p), 'rateN')) ?? 0);
    const fails = async (p: ProviderId) => Number((await store.redis.hget(circuitKey(store.ks, p), 'fails')) ?? 0);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    let trusting: Circuits;
    let mine: DeliveryRepo;
    /** Another process's view of the same circuits (another worker, the callbacks app). */
    let elsewhere: Circuits;
    beforeEach(() => {
      trusting = createCircuits(store.redis, store.ks, { ...POLICY, trustMs: 250 });
      mine = deliveryRepo(trusting);
      elsewhere = createCircuits(store.redis, store.ks, POLICY);
    });

    it('starts through a provider found clear without a pick, until a failure of ours ends the trust', async () => {
      const [a, b, c, d] = [
        await fixtures.created(),
        await fixtures.created(),
        await fixtures.created(),
        await fixtures.created(),
      ];
      expect(trusting.trusted()).toBe('');
      expect(await mine.begin(a.id, order, 5000)).toMatchObject({ kind: 'go', provider: 'twilio', attempt: 1 });
      expect(trusting.trusted()).toBe(',twilio,');
      expect(await mine.begin(b.id, order, 5000)).toMatchObject({ kind: 'go', provider: 'twilio', attempt: 1 });
      expect(await picks('twilio')).toBe(1);
      // the one step recorded the same attempt the pick and start would have
      expect(await view(b.id)).toMatchObject({
        deliveryStatus: 'sending',
        attempts: [{ provider: 'twilio', outcome: 'sending' }],
      });
      // a failure of ours ends the trust: the next send asks again
      await mine.failed(b.id, 1, 'twilio', 'retryable', '503');
      expect(trusting.trusted()).toBe('');
      expect(await mine.begin(c.id, order, 5000)).toMatchObject({ kind: 'go', provider: 'twilio', hadFailures: true });
      expect(await picks('twilio')).toBe(2);
      // with failures counted, no trust: every send asks, until a success resets them
      expect(await mine.begin(d.id, order, 5000)).toMatchObject({ kind: 'go', provider: 'twilio', hadFailures: true });
      expect(await picks('twilio')).toBe(3);
      expect(trusting.trusted()).toBe('');
      // a 429 ends it too
      await store.redis.del(circuitKey(store.ks, 'twilio'));
      await mine.begin((await fixtures.created()).id, order, 5000);
      expect(trusting.trusted()).toBe(',twilio,');
      await mine.failed(d.id, 1, 'twilio', 'rate_limited', '20429', 1000);
      expect(trusting.trusted()).toBe('');
    });

    it('lasts trustMs: a circuit opened elsewhere is seen after it; a rate-limited provider is never trusted', async () => {
      const brief = deliveryRepo(createCircuits(store.redis, store.ks, { ...POLICY, trustMs: 50 }));
      expect(await brief.begin((await fixtures.created()).id, order, 5000)).toMatchObject({ provider: 'twilio' });
      await elsewhere.failure('twilio', 'retryable', { now: now() });
      expect(await elsewhere.failure('twilio', 'retryable', { now: now() })).toBe('open');
      // within the trust, this worker still sends through Twilio (documented: seen up to trustMs late)
      expect(await brief.begin((await fixtures.created()).id, order, 5000)).toMatchObject({ provider: 'twilio' });
      await sleep(60);
      expect(await brief.begin((await fixtures.created()).id, order, 5000)).toMatchObject({ provider: 'octopush' });
      const limited = createCircuits(store.redis, store.ks, { ...POLICY, ratePerSecond: { octopush: 100 } });
      await deliveryRepo(limited).begin((await fixtures.created()).id, ['octopush'], 5000);
      expect(limited.trusted()).toBe('');
    });

    it("a trusted send's success resets the failures counted elsewhere at once, at most once per 50 ms", async () => {
      // trusted long enough for a slow machine: this test is about the resets, not the trust's length
      const lasting = createCircuits(store.redis, store.ks, { ...POLICY, trustMs: 60_000 });
      const repo2 = deliveryRepo(lasting);
      const [a, b, c] = [await fixtures.created(), await fixtures.created(), await fixtures.created()];
      const accepted = (id: string, messageId: string) =>
        repo2.accepted(id, 1, 'twilio', { messageId, providerStatus: 'queued', hadFailures: false });
      await repo2.begin(a.id, order, 5000);
      // the callbacks app counts an undelivered message meanwhile
      await elsewhere.failure('twilio', 'undelivered', { now: now() });
      await repo2.begin(b.id, order, 5000);
      await repo2.begin(c.id, order, 5000);
      expect(await picks('twilio')).toBe(1);
      // the reset goes out with the success, on the same connection: read after it, it is there
      await accepted(b.id, 'SMb');
      expect(await fails('twilio')).toBe(0);
      // another failure elsewhere, and a success within 50 ms of the reset: no second write, the failure stays
      await elsewhere.failure('twilio', 'undelivered', { now: now() });
      await accepted(c.id, 'SMc');
      expect(await fails('twilio')).toBe(1);
      // the next success after the 50 ms resets it
      await sleep(60);
      await accepted(a.id, 'SMa');
      expect(await fails('twilio')).toBe(0);
      // once we count a failure ourselves, the trust ends, and so do the trusted resets
      await repo2.failed(c.id, 1, 'twilio', 'retryable', '503');
      await sleep(60);
      await accepted(b.id, 'SMb');
      expect(await fails('twilio')).toBe(1);
    });

    it('a pick still out when a failure of ours lands does not trust the provider again', async () => {
      const picking = trusting.pick(['twilio'], now());
      await trusting.failure('twilio', 'retryable', { now: now() });
      expect(await picking).toMatchObject({ kind: 'picked', provider: 'twilio', hadFailures: false });
      expect(trusting.trusted()).toBe('');
    });
  });

  it('keeps each provider under its configured sends per second', async () => {
    const limited = deliveryRepo(createCircuits(store.redis, store.ks, { ...POLICY, ratePerSecond: { twilio: 2 } }));
    const picks: string[] = [];
    at(100);
    for (let i = 0; i < 4; i++) {
      const { id } = await fixtures.created();
      const b = await limited.begin(id, order, 5000);
      picks.push(b.kind === 'go' ? b.provider : b.kind);
    }
    expect(picks).toEqual(['twilio', 'twilio', 'octopush', 'octopush']);
    // alone, the limited provider makes the job wait for the next second
    const q5 = await fixtures.created();
    expect(await limited.begin(q5.id, ['twilio'], 5000)).toEqual({ kind: 'wait', ms: 900, expiresAt: q5.exp });
    at(1000);
    expect(await limited.begin(q5.id, ['twilio'], 5000)).toMatchObject({ kind: 'go', provider: 'twilio' });
  });

  it('pauses only the provider that answered 429, for the time it asked', async () => {
    const r1 = await fixtures.created();
    await repo.begin(r1.id, order, 5000);
    await repo.failed(r1.id, 1, 'twilio', 'rate_limited', '20429', 30_000);
    const r2 = await fixtures.created();
    at(5);
    expect(await repo.begin(r2.id, order, 5000)).toMatchObject({ kind: 'go', provider: 'octopush' });
    expect(await repo.begin(r1.id, order, 5000)).toMatchObject({ kind: 'go', attempt: 2, provider: 'octopush' });
    const r3 = await fixtures.created();
    expect(await repo.begin(r3.id, ['twilio'], 5000)).toEqual({ kind: 'wait', ms: 29_995, expiresAt: r3.exp });
    expect(await circuits.states(order, now())).toEqual({
      twilio: { open: false, paused: true },
      octopush: { open: false, paused: false },
    });
    at(30_000);
    expect(await repo.begin(r3.id, ['twilio'], 5000)).toMatchObject({ kind: 'go', provider: 'twilio' });
  });

  it('regression: a Retry-After of a day pauses the provider a minute at most (MAX_PAUSE_MS), not for every worker for hours', async () => {
    const r1 = await fixtures.created();
    await repo.begin(r1.id, order, 5000);
    await repo.failed(r1.id, 1, 'twilio', 'rate_limited', '20429', 86_400_000);
    const r2 = await fixtures.created();
    expect(await repo.begin(r2.id, ['twilio'], 5000)).toEqual({ kind: 'wait', ms: MAX_PAUSE_MS, expiresAt: r2.exp });
    at(MAX_PAUSE_MS);
    expect(await repo.begin(r2.id, ['twilio'], 5000)).toMatchObject({ kind: 'go', provider: 'twilio' });
  });

  it('regression: a 429 that names no wait backs off: 1 s, doubled while 429s keep coming, up to MAX_PAUSE_MS', async () => {
    // (every such 429 paused the provider 1 s: under a sustained limit each pause ended in a wave of sends and 429s)
    const wait = async () => {
      const r = await fixtures.created();
      return repo.begin(r.id, ['twilio'], 5000);
    };
    /** A Twilio attempt answered 429 without a wait, at `ms` (Twilio free then). */
    const limitedAt = async (ms: number) => {
      at(ms);
      const r = await fixtures.created();
      expect(await repo.begin(r.id, ['twilio'], 5000)).toMatchObject({ kind: 'go', provider: 'twilio' });
      await repo.failed(r.id, 1, 'twilio', 'rate_limited', '20429', undefined);
    };
    await limitedAt(0);
    expect(await wait()).toMatchObject({ kind: 'wait', ms: FIRST_PAUSE_MS });
    // a 429 of a request sent before the pause, arriving during it, leaves the pause as it is
    at(500);
    await circuits.failure('twilio', 'rate_limited', { now: now() });
    expect(await wait()).toMatchObject({ kind: 'wait', ms: FIRST_PAUSE_MS - 500 });
    // the provider answers 429 again soon after the pause ended: twice as long, and so on
    let ends = FIRST_PAUSE_MS;
    const pauses: number[] = [];
    for (let i = 0; i < 8; i++) {
      await limitedAt(ends + 10);
      const w = await wait();
      expect(w.kind).toBe('wait');
      const ms = (w as { ms: number }).ms;
      pauses.push(ms);
      ends = ends + 10 + ms;
    }
    expect(pauses).toEqual([2000, 4000, 8000, 16_000, 32_000, MAX_PAUSE_MS, MAX_PAUSE_MS, MAX_PAUSE_MS]);
    // long after the last pause (more than twice its length): back to the first step
    ends += 2 * MAX_PAUSE_MS + 1;
    await limitedAt(ends);
    expect(await wait()).toMatchObject({ kind: 'wait', ms: FIRST_PAUSE_MS });
    // a wait the provider names: what it asks; a shorter one during a longer pause does not shorten it
    at(ends + FIRST_PAUSE_MS);
    await circuits.failure('twilio', 'rate_limited', { now: now(), pauseMs: 30_000 });
    at(ends + FIRST_PAUSE_MS + 10);
    await circuits.failure('twilio', 'rate_limited', { now: now(), pauseMs: 2000 });
    expect(await wait()).toMatchObject({ kind: 'wait', ms: 30_000 - 10 });
    // and it does not feed the backoff: a bare 429 right after goes on from the backoff's own last step (1 s, so
    // 2 s), not from the 30 s asked (before, any wait asked was taken up and doubled)
    at(ends + FIRST_PAUSE_MS + 30_000 + 10);
    await circuits.failure('twilio', 'rate_limited', { now: now() });
    expect(await wait()).toMatchObject({ kind: 'wait', ms: 2 * FIRST_PAUSE_MS });
  });

  it('sends nothing for an OTP that ended or is about to expire, and gives up only on a pending one', async () => {
    const x1 = await fixtures.created();
    await fixtures.approve(x1.id);
    expect(await repo.begin(x1.id, order, 5000)).toEqual({ kind: 'stop', reason: 'approved' });
    expect(await repo.giveUp(x1.id)).toEqual({ ended: false, callingCode: '33' });
    expect((await view(x1.id)).status).toBe('approved');

    const x2 = await fixtures.created({ ttlMs: 4000 });
    expect(await repo.begin(x2.id, order, 5000)).toEqual({ kind: 'stop', reason: 'too_late' });
    expect(await repo.giveUp(x2.id)).toEqual({ ended: true, callingCode: '33' });
    expect(await view(x2.id)).toMatchObject({ status: 'failed', deliveryStatus: 'failed', attempts: [] });
    const record = await fixtures.record(x2.id);
    expect(record[OTP_FIELDS.sealed]).toBeUndefined();
    expect(record[OTP_FIELDS.hash]).toBeUndefined();

    expect(await repo.begin(newOtpId('0123456789abcdef'), order, 5000)).toEqual({ kind: 'stop', reason: 'gone' });
  });

  it('a permanent refusal ends the OTP failed, without counting against the provider', async () => {
    const { id } = await fixtures.created();
    await repo.begin(id, order, 5000);
    expect(await repo.failed(id, 1, 'twilio', 'permanent', '21211')).toEqual({ circuit: 'closed', ended: true });
    expect(await view(id)).toMatchObject({ status: 'failed', deliveryStatus: 'failed' });
    expect((await fixtures.record(id))[OTP_FIELDS.sealed]).toBeUndefined();
    expect(Number((await store.redis.hget(circuitKey(store.ks, 'twilio'), 'fails')) ?? 0)).toBe(0);
  });

  it('after a receipt timeout the code goes out once through each other provider', async () => {
    const { id } = await fixtures.created();
    await repo.begin(id, order, 5000);
    await accept(id, 1, 'twilio', 'SMt');
    at(RECEIPT_AFTER_MS - 1);
    expect(await sweep(id)).toEqual({ queued: 0, gaveUp: 0, receiptTimeouts: 0, events: 0, errors: 0 });
    at(RECEIPT_AFTER_MS);
    expect(await sweep(id)).toEqual({ queued: 1, gaveUp: 0, receiptTimeouts: 1, events: 0, errors: 0 });
    expect(noReceipts).toEqual(['twilio']);
    const resend = await fixtures.queues.forOtp(id).getJob(resendJobId(id, 1));
    expect(resend?.data).toEqual({ otpId: id, after: 1 });
    // the same timeout is not taken twice
    at(RECEIPT_AFTER_MS + 1);
    expect(await sweep(id)).toMatchObject({ receiptTimeouts: 0, events: 0, errors: 0 });
    expect(await outcomes(id)).toEqual(['no_receipt']);

    at(RECEIPT_AFTER_MS + 2);
    expect(await repo.begin(id, order, 5000)).toMatchObject({ kind: 'go', attempt: 2, provider: 'octopush' });
    at(RECEIPT_AFTER_MS + 3);
    await accept(id, 2, 'octopush', 'tk');
    at(2 * RECEIPT_AFTER_MS + 3);
    expect(await sweep(id)).toMatchObject({ receiptTimeouts: 1, events: 0, errors: 0 });
    expect(noReceipts).toEqual(['twilio', 'octopush']);
    at(2 * RECEIPT_AFTER_MS + 4);
    expect(await repo.begin(id, order, 5000)).toEqual({ kind: 'stop', reason: 'exhausted' });
    expect(await outcomes(id)).toEqual(['no_receipt', 'no_receipt']);
  });

  describe('a message reported sent that never gets a final receipt (destinations without delivery reports)', () => {
    const reports = () => createReportRepo({ redis: store.redis, ks: store.ks, messages, circuits, now });
    const carried: ProviderId[] = [];
    const sweepWith = (ids: string | string[], resendAfterSent?: boolean) =>
      sweepDue(
        {
          redis: store.redis,
          ks: store.ks,
          queues: fixtures.queues,
          circuits,
          onNoReceipt: (p) => noReceipts.push(p),
          onNoFinalReceipt: (p) => carried.push(p),
          ...(resendAfterSent === undefined ? {} : { resendAfterSent }),
          now,
        },
        { partitions: [...new Set([ids].flat().map(partitionOf))] },
      );
    const sentOnly = async (messageId: string) => {
      const { id } = await fixtures.created();
      await repo.begin(id, order, 5000);
      await accept(id, 1, 'twilio', messageId);
      const sent = { provider: 'twilio', messageId, status: 'sent', providerStatus: 'sent', errorCode: null } as const;
      expect(await reports().apply({ ...sent, at: now() })).toMatchObject({ kind: 'applied', deliveryStatus: 'sent' });
      return id;
    };
    const twilioFailures = async () => Number((await store.redis.hget(circuitKey(store.ks, 'twilio'), 'fails')) ?? 0);
    beforeEach(() => {
      carried.length = 0;
    });

    it('regression: is resent (in doubt) but never counted against its provider, whose circuit stays closed', async () => {
      const first = await sentOnly('SM-sent-1');
      const second = await sentOnly('SM-sent-2');
      at(RECEIPT_AFTER_MS);
      // one round over both OTPs' partitions (they may share one)
      expect(await sweepWith([first, second])).toEqual({
        queued: 2,
        gaveUp: 0,
        receiptTimeouts: 2,
        events: 0,
        errors: 0,
      });
      for (const id of [first, second]) {
        expect(await fixtures.queues.forOtp(id).getJob(resendJobId(id, 1))).toBeDefined();
      }
      // two failures would have opened Twilio's circuit (failureThreshold 2) for every OTP
      expect(carried).toEqual(['twilio', 'twilio']);
      expect(noReceipts).toEqual([]);
      expect(await twilioFailures()).toBe(0);
      const next = await fixtures.created();
      at(RECEIPT_AFTER_MS + 1);
      expect(await repo.begin(next.id, order, 5000)).toMatchObject({ kind: 'go', provider: 'twilio' });
    });

    it('DELIVERY_RESEND_AFTER_SENT=false: keeps counting as sent, nothing resent; a late final report still applies', async () => {
      const id = await sentOnly('SM-sent-3');
      at(RECEIPT_AFTER_MS);
      expect(await sweepWith(id, false)).toEqual({ queued: 0, gaveUp: 0, receiptTimeouts: 0, events: 0, errors: 0 });
      expect(await fixtures.queues.forOtp(id).getJob(resendJobId(id, 1))).toBeUndefined();
      expect(await view(id)).toMatchObject({ status: 'pending', deliveryStatus: 'sent', provider: 'twilio' });
      expect(await outcomes(id)).toEqual(['accepted']);
      expect(carried).toEqual(['twilio']);
      expect(await twilioFailures()).toBe(0);
      // the entry is gone: a later sweep takes nothing again
      at(2 * RECEIPT_AFTER_MS);
      expect(await sweepWith(id, false)).toMatchObject({ receiptTimeouts: 0, queued: 0 });
      expect(carried).toHaveLength(1);
      const late = {
        provider: 'twilio',
        messageId: 'SM-sent-3',
        providerStatus: 'undelivered',
        errorCode: '30003',
      } as const;
      expect(await reports().apply({ ...late, status: 'undelivered', at: now() })).toMatchObject({
        kind: 'applied',
        deliveryStatus: 'undelivered',
        resend: { otpId: id, after: 1 },
      });
    });

    it("regression: Octopush's answer to a repeated request id (no report can match it) is resent without blame", async () => {
      const { id } = await fixtures.created();
      await repo.begin(id, ['octopush', 'twilio'], 5000);
      await repo.accepted(id, 1, 'octopush', {
        messageId: `request_id:${id}-1`,
        providerStatus: 'duplicate_request',
        hadFailures: false,
      });
      at(RECEIPT_AFTER_MS);
      expect(await sweepWith(id)).toEqual({ queued: 1, gaveUp: 0, receiptTimeouts: 1, events: 0, errors: 0 });
      expect(noReceipts).toEqual([]);
      // counted as a receipt that could not come, not as Octopush's failure
      expect(carried).toEqual(['octopush']);
      expect(Number((await store.redis.hget(circuitKey(store.ks, 'octopush'), 'fails')) ?? 0)).toBe(0);
    });
  });

  /** An OTP whose Twilio message (`messageId`) got no receipt in time: its resend through Octopush has begun. */
  const resendUnderWay = async (messageId: string) => {
    const reports = createReportRepo({ redis: store.redis, ks: store.ks, messages, circuits, now });
    const { id } = await fixtures.created();
    await repo.begin(id, order, 5000);
    await accept(id, 1, 'twilio', messageId);
    at(RECEIPT_AFTER_MS);
    expect(await sweep(id)).toMatchObject({ receiptTimeouts: 1 });
    at(RECEIPT_AFTER_MS + 1);
    expect(await repo.begin(id, order, 5000)).toMatchObject({ kind: 'go', attempt: 2, provider: 'octopush' });
    return { id, reports };
  };

  it('regression: a late receipt of the first message while the resend was on its way keeps counting', async () => {
    const { id, reports } = await resendUnderWay('SMlate');
    // the first message is delivered after all, while the resend is with Octopush
    const late = { provider: 'twilio', messageId: 'SMlate', status: 'delivered', providerStatus: 'delivered' } as const;
    expect(await reports.apply({ ...late, errorCode: null, at: T0 })).toMatchObject({
      kind: 'applied',
      deliveryStatus: 'delivered',
    });
    await accept(id, 2, 'octopush', 'tk-late');
    // the OTP still reads delivered by Twilio (it read delivered by Octopush, and awaited Octopush's receipt)
    expect(await view(id)).toMatchObject({ deliveryStatus: 'delivered', provider: 'twilio' });
    expect((await outcomes(id))[1]).toBe('accepted');
    const due = await store.redis.zrange(otpKeys(store.ks, id).due, 0, -1);
    expect(due.filter((m) => m.startsWith(DUE.receipt))).toEqual([]);
    // and the resend's own negative report changes nothing of it
    expect(
      await reports.apply({
        provider: 'octopush',
        messageId: 'tk-late',
        status: 'undelivered',
        providerStatus: 'NOT_DELIVERED',
        errorCode: null,
        at: T0,
      }),
    ).toMatchObject({ kind: 'applied', deliveryStatus: 'delivered', resend: null });
  });

  it("regression: the resend's own delivered report does not take over from the earlier delivered message", async () => {
    const { id, reports } = await resendUnderWay('SMfirst');
    const delivered = { status: 'delivered', errorCode: null, at: T0 } as const;
    await reports.apply({ ...delivered, provider: 'twilio', messageId: 'SMfirst', providerStatus: 'delivered' });
    await accept(id, 2, 'octopush', 'tk-second');
    // both messages arrived: the first one counts, and no second otp.delivered is listed
    const r = await reports.apply({
      ...delivered,
      provider: 'octopush',
      messageId: 'tk-second',
      providerStatus: 'DELIVERED',
    });
    expect(r).toMatchObject({ kind: 'applied', deliveryStatus: 'delivered' });
    expect(await view(id)).toMatchObject({ deliveryStatus: 'delivered', provider: 'twilio' });
  });

  it('regression: awaits no receipt from a provider whose callbacks are not set up (its silence resent every code)', async () => {
    const twilioOnly = createDeliveryRepo(
      { redis: store.redis, ks: store.ks, circuits, messages, now },
      { leaseMs: 7000, receiptAfterMs: RECEIPT_AFTER_MS, messageTtlMs: 600_000, receiptsFrom: new Set(['twilio']) },
    );
    const receipts = async (id: string) =>
      (await store.redis.zrange(otpKeys(store.ks, id).due, 0, -1)).filter((m) => m.startsWith(DUE.receipt));
    const viaOctopush = await fixtures.created();
    expect(await twilioOnly.begin(viaOctopush.id, ['octopush'], 5000)).toMatchObject({ kind: 'go' });
    await twilioOnly.accepted(viaOctopush.id, 1, 'octopush', {
      messageId: 'tk-x',
      providerStatus: '',
      hadFailures: false,
    });
    expect(await receipts(viaOctopush.id)).toEqual([]);
    // no report of it can come: its message id is not indexed either
    expect(await store.redis.exists(messageKeys(store.ks, 'octopush', 'tk-x').index)).toBe(0);
    const viaTwilio = await fixtures.created();
    expect(await twilioOnly.begin(viaTwilio.id, ['twilio'], 5000)).toMatchObject({ kind: 'go' });
    await twilioOnly.accepted(viaTwilio.id, 1, 'twilio', { messageId: 'SM-x', providerStatus: '', hadFailures: false });
    expect(await receipts(viaTwilio.id)).toEqual([`${DUE.receipt}${viaTwilio.id}:1`]);
    expect(await store.redis.exists(messageKeys(store.ks, 'twilio', 'SM-x').index)).toBe(1);
  });

  it('hands back delivery reports that arrived before the message id was known', async () => {
    const reports = createReportRepo({ redis: store.redis, ks: store.ks, messages, circuits, now });
    const { id } = await fixtures.created();
    const early: DeliveryReport = {
      provider: 'twilio',
      messageId: 'SMe',
      status: 'delivered',
      providerStatus: 'delivered',
      errorCode: null,
      at: T0,
    };
    expect(await reports.apply(early)).toEqual({ kind: 'deferred' });
    await repo.begin(id, order, 5000);
    const handed = await accept(id, 1, 'twilio', 'SMe');
    expect(handed.map(parseDeliveryReport)).toEqual([early]);
    // handed over once: the next acceptance of the same message id gets none
    expect(await messages.record('twilio', 'SMe', { otpId: id, attempt: 1 }, 60_000)).toEqual([]);
  });

  it('regression: a step the store refused is tried again alone; the step before it is not repeated', async () => {
    const reports = createReportRepo({ redis: store.redis, ks: store.ks, messages, circuits, now });
    const { id } = await fixtures.created();
    const early = { provider: 'twilio', messageId: 'SMr', status: 'delivered', providerStatus: 'delivered' } as const;
    expect(await reports.apply({ ...early, errorCode: null, at: T0 })).toEqual({ kind: 'deferred' });
    let refusals = 1;
    const flaky = createDeliveryRepo(
      {
        redis: store.redis,
        ks: store.ks,
        circuits,
        messages: {
          ...messages,
          record: (...a) => (refusals-- > 0 ? Promise.reject(new Error('READONLY')) : messages.record(...a)),
        },
        now,
      },
      { leaseMs: 7000, receiptAfterMs: RECEIPT_AFTER_MS, messageTtlMs: 600_000 },
    );
    await flaky.begin(id, order, 5000);
    const tries: number[] = [];
    const retry = async <T>(step: () => Promise<T>): Promise<T> => {
      const i = tries.push(0) - 1;
      for (;;) {
        tries[i] = (tries[i] ?? 0) + 1;
        try {
          return await step();
        } catch {}
      }
    };
    const handed = await flaky.accepted(
      id,
      1,
      'twilio',
      { messageId: 'SMr', providerStatus: 'queued', hadFailures: true },
      retry,
    );
    // the OTP's record once, the message index twice; the early report still handed over
    expect(tries).toEqual([1, 2]);
    expect(handed.map(parseDeliveryReport)).toMatchObject([early]);
    expect(await outcomes(id)).toEqual(['accepted']);
  });

  it('regression: the cool-down a retryable failure opens runs on the clock the delivery repo was given', async () => {
    const plain = deliveryRepo(circuits);
    for (let i = 0; i < 2; i++) {
      const { id } = await fixtures.created();
      await plain.begin(id, ['twilio'], 5000);
      await plain.failed(id, 1, 'twilio', 'retryable', '503');
    }
    const c = await fixtures.created();
    at(1);
    expect(await plain.begin(c.id, ['twilio'], 5000)).toEqual({ kind: 'wait', ms: 9_999, expiresAt: c.exp });
  });
});
