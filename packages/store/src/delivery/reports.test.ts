import type { ProviderId } from '@otp-gateway/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type OtpFixtures, otpFixtures } from '../../../../test/support/otp-fixtures.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis, keysUnder } from '../../../../test/support/redis.js';
import {
  ATTEMPT_EARLY_REPORTS_CAP,
  ATTEMPT_FIELDS,
  DUE,
  OTP_FIELDS as F,
  otpKeys,
  SWEEP_GRACE_MS,
} from '../otp/otp.record.js';
import { type Circuits, circuitKey, createCircuits } from './circuit.js';
import { createDeliveryRepo } from './delivery.repo.js';
import { createMessageIndex, type MessageIndex, messageKeys } from './messages.js';
import { createReportRepo, type DeliveryReport, parseDeliveryReport, type ReportRepo } from './reports.js';
import { sweepDue } from './sweep.js';

// Every script runs on the test's clock, far from the Redis node's.
const T0 = 1_800_000_000_000;
let t = T0;
const now = () => t;
const at = (ms: number) => {
  t = T0 + ms;
};

let store: IsolatedStore;
let fixtures: OtpFixtures;
let messages: MessageIndex;
let circuits: Circuits;
let repo: ReportRepo;

beforeEach(async () => {
  t = T0;
  store = await isolatedRedis();
  fixtures = otpFixtures(store, { now });
  messages = createMessageIndex(store.redis, store.ks);
  circuits = createCircuits(store.redis, store.ks, { failureThreshold: 5, cooldownMs: 10_000, ratePerSecond: {} });
  repo = createReportRepo({ redis: store.redis, ks: store.ks, messages, circuits, now });
});

afterEach(async () => {
  await fixtures.close();
  await closeRedisClients(store.redis);
});

/** The field of attempt n, as the OTP's hash names it. */
const af = (n: number, field: keyof typeof ATTEMPT_FIELDS) => `a${n}.${ATTEMPT_FIELDS[field]}`;

let n = 0;
/** A pending OTP whose attempt 1 went out through Twilio (the API's create, the worker's begin and accept). */
async function acceptedOtp(opts: { ttlMs?: number } = {}) {
  const messageId = `SM-${++n}`;
  const { id, exp } = await fixtures.accepted('twilio', messageId, opts);
  return { id, exp, messageId };
}

const report = (messageId: string, status: DeliveryReport['status'], extra: Partial<DeliveryReport> = {}) =>
  ({
    provider: 'twilio',
    messageId,
    status,
    providerStatus: status,
    errorCode: null,
    at: now(),
    ...extra,
  }) satisfies DeliveryReport;

const otp = (id: string) => fixtures.record(id);
const failures = (provider: ProviderId) => store.redis.hget(circuitKey(store.ks, provider), 'fails');
/** When the sweep looks at the OTP again to queue its resend (null: not listed). */
const listedForResend = (id: string) => store.redis.zscore(otpKeys(store.ks, id).due, DUE.unstarted + id);

describe('report repo', () => {
  it('moves forward only: a late sent after delivered leaves it delivered, a duplicate changes nothing', async () => {
    const { id, messageId } = await acceptedOtp();
    at(100);
    const first = await repo.apply(report(messageId, 'delivered'));
    expect(first).toEqual({
      kind: 'applied',
      otpId: id,
      attempt: 1,
      deliveryStatus: 'delivered',
      changed: true,
      callingCode: '33',
      resend: null,
    });
    const after = await otp(id);
    expect(after).toMatchObject({
      [F.ds]: 'delivered',
      [af(1, 'outcome')]: 'delivered',
      [af(1, 'providerStatus')]: 'delivered',
      [af(1, 'updatedAt')]: String(T0 + 100),
    });

    at(101);
    const late = await repo.apply(report(messageId, 'sent'));
    expect(late).toMatchObject({ kind: 'applied', deliveryStatus: 'delivered', changed: false });
    at(102);
    const dup = await repo.apply(report(messageId, 'delivered'));
    expect(dup).toMatchObject({ kind: 'applied', deliveryStatus: 'delivered', changed: false });
    at(103);
    const contrary = await repo.apply(report(messageId, 'undelivered', { errorCode: '30003' }));
    expect(contrary).toMatchObject({ deliveryStatus: 'delivered', changed: false, resend: null });
    expect(await otp(id)).toEqual(after);
    expect(await failures('twilio')).toBeNull();
  });

  it('records a non-final status on the attempt without moving the OTP backwards', async () => {
    const { id, messageId } = await acceptedOtp();
    const res = await repo.apply(report(messageId, 'sending'));
    expect(res).toMatchObject({ kind: 'applied', deliveryStatus: 'sent', changed: true });
    expect(await otp(id)).toMatchObject({
      [F.ds]: 'sent',
      [af(1, 'outcome')]: 'accepted',
      [af(1, 'providerStatus')]: 'sending',
    });
  });

  it('defers a report for an unknown message id and applies it to nothing', async () => {
    const { id, messageId } = await acceptedOtp();
    const before = await otp(id);
    // the store's keys, not the send queues' (BullMQ writes its own when it likes)
    const storeKeys = async () =>
      (await keysUnder(store.redis, store.prefix)).filter(
        (k) => !fixtures.queues.shards.some((q) => k.startsWith(`${q.opts.prefix}:`)),
      );
    const keysBefore = await storeKeys();
    expect(await repo.apply(report('SM-never-sent', 'delivered'))).toEqual({ kind: 'deferred' });
    expect(await otp(id)).toEqual(before);
    // nothing but the kept report was written
    const keysAfter = await storeKeys();
    const never = messageKeys(store.ks, 'twilio', 'SM-never-sent');
    expect(keysAfter.filter((k) => !keysBefore.includes(k)).sort()).toEqual([never.early, never.kept].sort());
    expect(keysBefore.filter((k) => !keysAfter.includes(k))).toEqual([]);
    expect(await messages.lookup('twilio', messageId, '{}')).toEqual({ otpId: id, attempt: 1 });
  });

  it('keeps a report that beats the message id for the worker, capped and expiring within the hour', async () => {
    const early = report('SM-early', 'delivered');
    expect(await repo.apply(early)).toEqual({ kind: 'deferred' });
    const { early: earlyKey } = messageKeys(store.ks, 'twilio', 'SM-early');
    const stored = await store.redis.lrange(earlyKey, 0, -1);
    expect(stored.map(parseDeliveryReport)).toEqual([early]);
    const ttl = await store.redis.pttl(earlyKey);
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
    for (let i = 1; i <= 30; i++) await repo.apply(report('SM-early', 'sent', { at: T0 + i }));
    const kept = (await store.redis.lrange(earlyKey, 0, -1)).map(parseDeliveryReport);
    expect(kept).toHaveLength(20);
    // the newest are kept
    expect(kept.at(-1)).toMatchObject({ status: 'sent', at: T0 + 30 });
  });

  it('regression: reports for invented message ids are capped per bucket (a total cap), then dropped and counted', async () => {
    const heard: string[] = [];
    const capped = createMessageIndex(store.redis, store.ks, {
      caps: { perMessage: 20, perBucket: 3 },
      onEarly: (_p, outcome) => heard.push(outcome),
    });
    const cappedRepo = createReportRepo({ redis: store.redis, ks: store.ks, messages: capped, circuits, now });
    // ids that share one bucket (hence one counter), found the way an attacker could
    const bucket = messageKeys(store.ks, 'twilio', 'SM-x0').kept;
    const ids: string[] = [];
    for (let i = 0; ids.length < 5; i++) {
      if (messageKeys(store.ks, 'twilio', `SM-x${i}`).kept === bucket) ids.push(`SM-x${i}`);
    }
    const results = [];
    for (const id of ids) results.push((await cappedRepo.apply(report(id, 'delivered'))).kind);
    expect(results).toEqual(['deferred', 'deferred', 'deferred', 'dropped', 'dropped']);
    expect(heard).toEqual(['kept', 'kept', 'kept', 'dropped', 'dropped']);
    const lists = await Promise.all(ids.map((id) => store.redis.exists(messageKeys(store.ks, 'twilio', id).early)));
    expect(lists).toEqual([1, 1, 1, 0, 0]);
    // a message the worker did record is still found, whatever the cap
    const { id, messageId } = await acceptedOtp();
    expect(await capped.lookup('twilio', messageId, '{}')).toEqual({ otpId: id, attempt: 1 });
  });

  it('regression: a report naming another recipient than the OTP number changes nothing', async () => {
    const { id, messageId } = await acceptedOtp();
    const before = await otp(id);
    const forged = await repo.apply(report(messageId, 'undelivered', { phoneNumber: '+33699999999' }));
    expect(forged).toEqual({ kind: 'ignored', reason: 'number_mismatch' });
    expect(await otp(id)).toEqual(before);
    expect(await listedForResend(id)).toBeNull();
    // the same number, with or without its +, is applied
    const phone = String(before[F.phone]);
    const right = await repo.apply(report(messageId, 'delivered', { phoneNumber: phone.replace(/^\+/, '') }));
    expect(right).toMatchObject({ kind: 'applied', changed: true, deliveryStatus: 'delivered' });
  });

  it('on undelivered for the attempt that counts, clears acc and asks for the resend', async () => {
    const { id, messageId } = await acceptedOtp();
    at(100);
    const res = await repo.apply(report(messageId, 'undelivered', { errorCode: '30003' }));
    expect(res).toEqual({
      kind: 'applied',
      otpId: id,
      attempt: 1,
      deliveryStatus: 'undelivered',
      changed: true,
      callingCode: '33',
      resend: { otpId: id, after: 1 },
    });
    expect(await otp(id)).toMatchObject({
      [F.acc]: '',
      [F.ds]: 'undelivered',
      [af(1, 'outcome')]: 'undelivered',
      [af(1, 'errorCode')]: '30003',
    });
    expect(await failures('twilio')).toBe('1');
    // listed, so the sweep queues the resend if the caller's add is lost
    expect(Number(await listedForResend(id))).toBe(T0 + 100 + SWEEP_GRACE_MS);
    // the same report again neither resends nor counts twice against the provider
    at(101);
    expect(await repo.apply(report(messageId, 'undelivered'))).toMatchObject({ changed: false, resend: null });
    expect(await failures('twilio')).toBe('1');
  });

  it('gives an approved OTP no resend but records the failure', async () => {
    const { id, messageId } = await acceptedOtp();
    await fixtures.approve(id);
    const res = await repo.apply(report(messageId, 'failed', { errorCode: '30006' }));
    expect(res).toMatchObject({ kind: 'applied', deliveryStatus: 'failed', changed: true, resend: null });
    expect(await otp(id)).toMatchObject({
      [F.status]: 'approved',
      [F.acc]: '1',
      [F.ds]: 'failed',
      [af(1, 'outcome')]: 'failed',
    });
    expect(await listedForResend(id)).toBeNull();
  });

  it('gives an OTP expiring within 15 s no resend', async () => {
    const { id, messageId } = await acceptedOtp({ ttlMs: 25_000 });
    at(15_000);
    const res = await repo.apply(report(messageId, 'undelivered'));
    expect(res).toMatchObject({ kind: 'applied', deliveryStatus: 'undelivered', changed: true, resend: null });
    expect(await otp(id)).toMatchObject({ [F.status]: 'pending', [F.acc]: '1', [F.ds]: 'undelivered' });
    expect(await listedForResend(id)).toBeNull();
  });

  it('after a failover, the new attempt that counts replaces the earlier undelivered status', async () => {
    const { id, messageId: m1 } = await acceptedOtp();
    expect(await repo.apply(report(m1, 'undelivered'))).toMatchObject({ resend: { otpId: id, after: 1 } });
    // the resend: the worker's begin + accept for attempt 2 through Octopush
    at(5);
    expect(await fixtures.delivery.begin(id, ['twilio', 'octopush'], 5000)).toMatchObject({
      kind: 'go',
      attempt: 2,
      provider: 'octopush',
    });
    await fixtures.delivery.accepted(id, 2, 'octopush', { messageId: 'oct-2', providerStatus: '', hadFailures: false });
    expect(await otp(id)).toMatchObject({ [F.ds]: 'sent', [F.acc]: '2', [F.provider]: 'octopush' });
    at(10);
    const res = await repo.apply(report('oct-2', 'delivered', { provider: 'octopush', providerStatus: 'DELIVERED' }));
    expect(res).toMatchObject({ attempt: 2, deliveryStatus: 'delivered', changed: true, resend: null });
    // a late report for the first attempt does not touch the OTP's status
    at(11);
    await repo.apply(report(m1, 'failed'));
    expect(await otp(id)).toMatchObject({
      [F.ds]: 'delivered',
      [F.acc]: '2',
      [af(1, 'outcome')]: 'undelivered',
      [af(2, 'outcome')]: 'delivered',
    });
  });

  it('a late delivered receipt for an earlier attempt makes it count again, and lists the resend for the sweep', async () => {
    const { id, messageId: m1 } = await acceptedOtp();
    const first = await repo.apply(report(m1, 'undelivered'));
    expect(first).toMatchObject({ resend: { otpId: id, after: 1 } });
    expect(await listedForResend(id)).not.toBeNull();
    // Twilio changes its mind: undelivered is final, nothing moves
    at(1);
    expect(await repo.apply(report(m1, 'delivered'))).toMatchObject({ changed: false });
    expect(await otp(id)).toMatchObject({ [F.acc]: '', [F.ds]: 'undelivered' });

    // the resend goes out through Octopush, and no receipt comes in time
    const worker = createDeliveryRepo(
      { redis: store.redis, ks: store.ks, circuits, messages, now },
      { leaseMs: 5000, receiptAfterMs: 60_000, messageTtlMs: 600_000 },
    );
    at(2);
    expect(await worker.begin(id, ['twilio', 'octopush'], 5000)).toMatchObject({ attempt: 2, provider: 'octopush' });
    await worker.accepted(id, 2, 'octopush', { messageId: 'oct-late', providerStatus: '', hadFailures: false });
    const sweep = () =>
      sweepDue(
        { redis: store.redis, ks: store.ks, queues: fixtures.queues, circuits, now },
        { partitions: [Number.parseInt(id.slice(4, 7), 16)] },
      );
    at(60_002);
    expect(await sweep()).toMatchObject({ receiptTimeouts: 1, events: 0, errors: 0 });
    expect(await otp(id)).toMatchObject({ [F.acc]: '', [af(2, 'outcome')]: 'no_receipt' });

    // it is reported delivered later: it counts, and the sweep sends nothing more
    at(61_000);
    const late = await repo.apply(
      report('oct-late', 'delivered', { provider: 'octopush', providerStatus: 'DELIVERED' }),
    );
    expect(late).toMatchObject({ attempt: 2, deliveryStatus: 'delivered', changed: true, resend: null });
    expect(await otp(id)).toMatchObject({ [F.acc]: '2', [F.ds]: 'delivered', [F.provider]: 'octopush' });
    at(61_000 + SWEEP_GRACE_MS);
    expect(await sweep()).toEqual({ queued: 0, gaveUp: 0, receiptTimeouts: 0, events: 0, errors: 0 });
    expect(await listedForResend(id)).toBeNull();
  });

  it('ignores a report whose OTP record is gone', async () => {
    const { id, messageId } = await acceptedOtp();
    // the record's retention ran out before the message index's
    await store.redis.del(otpKeys(store.ks, id).otp);
    expect(await repo.apply(report(messageId, 'delivered'))).toEqual({ kind: 'ignored', reason: 'unknown_otp' });
    expect(await store.redis.exists(otpKeys(store.ks, id).otp)).toBe(0);
  });
});

describe('receipt checks', () => {
  it('regression: a final report takes its attempt out of the due set (no receipt check left to run for it)', async () => {
    const messageId = `SM-r${++n}`;
    const { id } = await fixtures.accepted('twilio', messageId, { receiptAfterMs: 120_000 });
    const due = otpKeys(store.ks, id).due;
    expect(await store.redis.zscore(due, `${DUE.receipt}${id}:1`)).not.toBeNull();
    await repo.apply(report(messageId, 'sent'));
    expect(await store.redis.zscore(due, `${DUE.receipt}${id}:1`)).not.toBeNull();
    await repo.apply(report(messageId, 'delivered'));
    expect(await store.redis.zscore(due, `${DUE.receipt}${id}:1`)).toBeNull();
  });
});

describe('reports that name their attempt (Twilio StatusCallback with ?otp=&attempt=)', () => {
  const named = (id: string) => ({ otpId: id, attempt: 1 });
  /** The worker's acceptance of attempt 1 as message `messageId`, whose reports name the attempt. */
  const acceptNamed = (id: string, messageId: string) =>
    fixtures.delivery.accepted(id, 1, 'twilio', {
      messageId,
      providerStatus: 'queued',
      hadFailures: false,
      reportsNameAttempt: true,
    });
  const indexed = async (messageId: string) =>
    store.redis.exists(
      messageKeys(store.ks, 'twilio', messageId).index,
      messageKeys(store.ks, 'twilio', messageId).early,
    );

  it('an accepted message whose reports name it is not indexed, and its report applies without a lookup', async () => {
    const messageId = `SM-n${++n}`;
    const { id } = await fixtures.accepted('twilio', messageId, { named: true });
    expect(await indexed(messageId)).toBe(0);
    // the index knows nothing of it: without the name the report waits for a record that never comes
    expect(await repo.apply(report(messageId, 'sent'))).toEqual({ kind: 'deferred' });
    expect(await repo.apply(report(messageId, 'delivered'), named(id))).toMatchObject({
      kind: 'applied',
      attempt: 1,
      deliveryStatus: 'delivered',
      changed: true,
    });
    expect(await otp(id)).toMatchObject({ [F.ds]: 'delivered', [af(1, 'outcome')]: 'delivered' });
  });

  it('a report that beats the acceptance is kept on the attempt, and the acceptance hands it over, once', async () => {
    const messageId = `SM-n${++n}`;
    const { id } = await fixtures.sending('twilio');
    const sent = report(messageId, 'sent');
    const delivered = report(messageId, 'delivered');
    expect(await repo.apply(sent, named(id))).toEqual({ kind: 'deferred' });
    expect(await repo.apply(delivered, named(id))).toEqual({ kind: 'deferred' });
    expect(await otp(id)).toMatchObject({ [F.ds]: 'sending', [af(1, 'outcome')]: 'sending' });
    expect(await indexed(messageId)).toBe(0);

    const early = await acceptNamed(id, messageId);
    expect(early.map((j) => parseDeliveryReport(j))).toEqual([sent, delivered]);
    // what the worker does with them (send.worker.ts applyEarlyReports)
    for (const json of early) await repo.apply(parseDeliveryReport(json) as DeliveryReport, named(id));
    expect(await otp(id)).toMatchObject({ [F.ds]: 'delivered', [af(1, 'outcome')]: 'delivered' });
    expect(await indexed(messageId)).toBe(0);
    // an acceptance tried again (its first answer lost) hands them over again; applying them twice changes nothing
    const again = await acceptNamed(id, messageId);
    expect(again).toEqual(early);
    const before = await otp(id);
    for (const json of again) {
      expect(await repo.apply(parseDeliveryReport(json) as DeliveryReport, named(id))).toMatchObject({
        kind: 'applied',
        changed: false,
      });
    }
    expect(await otp(id)).toEqual(before);
  });

  it('a report for an attempt interrupted (its worker stalled past the lease) is kept for its late acceptance', async () => {
    const messageId = `SM-n${++n}`;
    const { id } = await fixtures.sending('twilio');
    at(60_000);
    // the lease is over: the next job marks attempt 1 interrupted and resumes its request as attempt 2
    expect(await fixtures.delivery.begin(id, ['twilio'], 5000)).toMatchObject({ kind: 'go', attempt: 2 });
    expect((await otp(id))[af(1, 'outcome')]).toBe('interrupted');
    expect(await repo.apply(report(messageId, 'delivered'), named(id))).toEqual({ kind: 'deferred' });
    // the stalled worker records attempt 1 after all, and gets the report
    const early = await acceptNamed(id, messageId);
    expect(early.map((j) => parseDeliveryReport(j)?.status)).toEqual(['delivered']);
  });

  it('keeps the newest ATTEMPT_EARLY_REPORTS_CAP reports on an attempt, and counts what it keeps', async () => {
    const heard: string[] = [];
    const counted = createReportRepo({
      redis: store.redis,
      ks: store.ks,
      messages,
      circuits,
      now,
      onEarly: (provider, outcome) => heard.push(`${provider}:${outcome}`),
    });
    const { id } = await fixtures.sending('twilio');
    for (let i = 0; i <= ATTEMPT_EARLY_REPORTS_CAP; i++) {
      expect(await counted.apply(report(`SM-cap${i}`, 'sent'), named(id))).toEqual({ kind: 'deferred' });
    }
    const kept = String((await otp(id))[af(1, 'early')]).split('\n');
    expect(kept).toHaveLength(ATTEMPT_EARLY_REPORTS_CAP);
    expect(parseDeliveryReport(kept[0] ?? '')?.messageId).toBe('SM-cap1');
    expect(parseDeliveryReport(kept.at(-1) ?? '')?.messageId).toBe(`SM-cap${ATTEMPT_EARLY_REPORTS_CAP}`);
    expect(heard).toEqual([...Array(ATTEMPT_EARLY_REPORTS_CAP).fill('twilio:kept'), 'twilio:trimmed']);
  });

  it('a named report for another message than the attempt recorded, or for an attempt that never went out, changes nothing', async () => {
    const messageId = `SM-n${++n}`;
    const { id } = await fixtures.accepted('twilio', messageId, { named: true });
    const before = await otp(id);
    expect(await repo.apply(report('SM-other', 'delivered'), named(id))).toEqual({ kind: 'ignored', reason: 'stale' });
    expect(await repo.apply(report(messageId, 'delivered'), { otpId: id, attempt: 2 })).toEqual({
      kind: 'ignored',
      reason: 'stale',
    });
    expect(await otp(id)).toEqual(before);

    // attempt 1 failed without a message (a timeout): a report naming it is not kept for an acceptance that never comes
    const { id: failedId } = await fixtures.sending('twilio');
    await fixtures.delivery.failed(failedId, 1, 'twilio', 'retryable', 'timeout');
    const failedBefore = await otp(failedId);
    expect(await repo.apply(report('SM-late', 'delivered'), named(failedId))).toEqual({
      kind: 'ignored',
      reason: 'stale',
    });
    expect(await otp(failedId)).toEqual(failedBefore);
  });
});
