import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type OtpFixtures, otpFixtures } from '../../../../test/support/otp-fixtures.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from '../../../../test/support/redis.js';
import { enqueueResend, enqueueSend, resendJobId } from '../jobs/send-jobs.js';
import { ATTEMPT_FIELDS, DUE, OTP_FIELDS as F, otpKeys, SWEEP_GRACE_MS, SWEEP_RELIST_MS } from '../otp/otp.record.js';
import { type Circuits, createCircuits } from './circuit.js';
import { createDeliveryRepo } from './delivery.repo.js';
import { createMessageIndex } from './messages.js';
import { createReportRepo } from './reports.js';
import { type SweepReport, sweepDue } from './sweep.js';

// Every script runs on the test's clock, far from the Redis node's.
const T0 = 1_800_000_000_000;
let t = T0;
const now = () => t;
const at = (ms: number) => {
  t = T0 + ms;
};

let store: IsolatedStore;
let fixtures: OtpFixtures;
let circuits: Circuits;
const failed: [otpId: string, callingCode: string][] = [];

beforeEach(async () => {
  t = T0;
  failed.length = 0;
  store = await isolatedRedis();
  fixtures = otpFixtures(store, { now });
  circuits = createCircuits(store.redis, store.ks, { failureThreshold: 5, cooldownMs: 10_000, ratePerSecond: {} });
});

afterEach(async () => {
  await fixtures.close();
  await closeRedisClients(store.redis);
});

/** The partition of an OTP (its due set): the sweep reads only the test's own. */
const partitionOf = (otpId: string) => Number.parseInt(otpId.slice(4, 7), 16);
const sweep = (...ids: string[]): Promise<SweepReport> =>
  sweepDue(
    {
      redis: store.redis,
      ks: store.ks,
      queues: fixtures.queues,
      circuits,
      onFailed: (otpId, callingCode) => failed.push([otpId, callingCode]),
      now,
    },
    { partitions: [...new Set(ids.map(partitionOf))] },
  );
const job = (otpId: string, jobId = otpId) => fixtures.queues.forOtp(otpId).getJob(jobId);
/** What the callbacks app applies delivery reports with. */
const reportRepo = () =>
  createReportRepo({
    redis: store.redis,
    ks: store.ks,
    messages: createMessageIndex(store.redis, store.ks),
    circuits,
    now,
  });
/** When the sweep looks at the OTP's job next (null: not listed). */
const listed = async (id: string) => {
  const score = await store.redis.zscore(otpKeys(store.ks, id).due, DUE.unstarted + id);
  return score === null ? null : Number(score);
};

describe('sweepDue: OTPs whose job never started', () => {
  it('queues the job of an accepted OTP whose job was lost, after the grace period only', async () => {
    const { id } = await fixtures.created();
    at(SWEEP_GRACE_MS / 2);
    expect(await sweep(id)).toEqual({ queued: 0, gaveUp: 0, receiptTimeouts: 0, events: 0, errors: 0 });
    expect(await job(id)).toBeUndefined();
    at(SWEEP_GRACE_MS + 1000);
    expect(await sweep(id)).toEqual({ queued: 1, gaveUp: 0, receiptTimeouts: 0, events: 0, errors: 0 });
    const queued = await job(id);
    expect(queued?.name).toBe('send');
    expect(queued?.data).toEqual({ otpId: id });
    // still listed, further out, in case this job is lost too
    expect(await listed(id)).toBe(T0 + SWEEP_GRACE_MS + 1000 + SWEEP_RELIST_MS);
    at(SWEEP_GRACE_MS + 1001);
    expect(await sweep(id)).toMatchObject({ queued: 0 });
  });

  it('leaves alone OTPs that ended or whose attempt is under way; one about to expire that never went out ends failed', async () => {
    const done = await fixtures.created();
    await fixtures.approve(done.id);
    const started = await fixtures.created();
    expect(await fixtures.delivery.begin(started.id, ['twilio'], 5000)).toMatchObject({ kind: 'go', attempt: 1 });
    const late = await fixtures.created({ ttlMs: 20_000 });

    at(SWEEP_GRACE_MS + 1000);
    expect(await sweep(done.id, started.id, late.id)).toEqual({
      queued: 0,
      gaveUp: 1,
      receiptTimeouts: 0,
      events: 0,
      errors: 0,
    });
    expect(failed).toEqual([[late.id, '33']]);
    for (const o of [done, started, late]) expect(await job(o.id)).toBeUndefined();
    for (const o of [done, late]) expect(await listed(o.id)).toBeNull();
    // looked at again once its lease (5 s here) is over, in case the job that started it dies
    expect(await listed(started.id)).toBe(T0 + 5000 + SWEEP_GRACE_MS);
    expect(await fixtures.record(late.id)).toMatchObject({ [F.status]: 'failed', [F.ds]: 'failed' });
    expect(await fixtures.record(done.id)).toMatchObject({ [F.status]: 'approved' });
    expect(await fixtures.record(started.id)).toMatchObject({
      [F.status]: 'pending',
      [`a1.${ATTEMPT_FIELDS.outcome}`]: 'sending',
    });
  });

  it('queues a resend after non-delivery that the callbacks app could not queue', async () => {
    const { id } = await fixtures.accepted('twilio', 'SM-resend');
    const reports = reportRepo();
    const applied = await reports.apply({
      provider: 'twilio',
      messageId: 'SM-resend',
      status: 'undelivered',
      providerStatus: 'undelivered',
      errorCode: '30003',
      at: T0,
    });
    // the callbacks app should queue this resend now; it could not
    expect(applied).toMatchObject({ resend: { otpId: id, after: 1 } });
    at(SWEEP_GRACE_MS + 1000);
    expect(await sweep(id)).toEqual({ queued: 1, gaveUp: 0, receiptTimeouts: 0, events: 0, errors: 0 });
    const resend = await job(id, resendJobId(id, 1));
    expect(resend?.name).toBe('resend');
    expect(resend?.data).toEqual({ otpId: id, after: 1 });
    // and the resend goes out through the other provider
    expect(await fixtures.delivery.begin(id, ['twilio', 'octopush'], 5000)).toMatchObject({
      kind: 'go',
      attempt: 2,
      provider: 'octopush',
    });
  });

  it('does not duplicate a job that is only waiting; a started job is listed until its lease is over', async () => {
    const waiting = await fixtures.created();
    await enqueueSend(fixtures.queues, waiting.id);
    const begun = await fixtures.created();
    expect(await listed(begun.id)).not.toBeNull();
    at(1);
    await fixtures.delivery.begin(begun.id, ['twilio'], 5000);
    expect(await listed(begun.id)).toBe(T0 + 1 + 5000 + SWEEP_GRACE_MS);

    at(SWEEP_GRACE_MS + 1000);
    await sweep(waiting.id, begun.id);
    const counts = await Promise.all(fixtures.queues.shards.map((q) => q.getJobCounts('waiting')));
    expect(counts.reduce((sum, c) => sum + (c['waiting'] ?? 0), 0)).toBe(1);
    expect((await job(waiting.id))?.data).toEqual({ otpId: waiting.id });
    expect(await job(begun.id)).toBeUndefined();
  });
});

/** Runs the job through a worker that fails it until BullMQ gives up on it (its attempts), as a broken store would. */
async function failForGood(otpId: string, jobId = otpId): Promise<void> {
  const queue = fixtures.queues.forOtp(otpId);
  const { Worker } = await import('bullmq');
  const connection = store.redis.duplicate();
  const worker = new Worker(
    queue.name,
    async () => {
      throw new Error('connection lost');
    },
    { connection, prefix: queue.opts.prefix, autorun: false },
  );
  const failedForGood = new Promise<void>((resolve) =>
    worker.on('failed', (j) => j?.id === jobId && j.attemptsMade >= (j.opts.attempts ?? 1) && resolve()),
  );
  void worker.run();
  await failedForGood;
  await worker.close();
  connection.disconnect();
  expect(await queue.getJobState(jobId)).toBe('failed');
}

describe('sweepDue: jobs that failed for good before an attempt was recorded', () => {
  it('regression: an OTP whose job failed between the plan and the start stays listed, and its job is queued again', async () => {
    const { id } = await fixtures.created();
    await enqueueSend(fixtures.queues, id);
    // The plan runs, then the circuits' step fails (their master away, say): no attempt is recorded.
    const broken = createDeliveryRepo(
      {
        redis: store.redis,
        ks: store.ks,
        circuits: { ...circuits, pick: () => Promise.reject(new Error('connection lost')) },
        messages: createMessageIndex(store.redis, store.ks),
        now,
      },
      { leaseMs: 5000, receiptAfterMs: 0, messageTtlMs: 60_000 },
    );
    await expect(broken.begin(id, ['twilio'], 5000)).rejects.toThrow('connection lost');
    expect(await listed(id)).not.toBeNull();
    // BullMQ gives up on the job after its attempts.
    await failForGood(id);
    // The sweep replaces the failed job with a new one: the code still goes out.
    at(SWEEP_GRACE_MS + 1);
    expect(await sweep(id)).toMatchObject({ queued: 1, errors: 0 });
    expect(await fixtures.queues.forOtp(id).getJobState(id)).toBe('waiting');
  });
});

describe('sweepDue: jobs that died after starting an attempt', () => {
  it('regression: a job that failed for good during its attempt is queued again after the lease, and resumes it', async () => {
    const { id } = await fixtures.created();
    await enqueueSend(fixtures.queues, id);
    expect(await fixtures.delivery.begin(id, ['twilio', 'octopush'], 5000)).toMatchObject({ kind: 'go', attempt: 1 });
    // its worker killed once too often, or the store failing it five times: BullMQ gives the job up
    await failForGood(id);
    at(5000 + SWEEP_GRACE_MS - 1);
    expect(await sweep(id)).toMatchObject({ queued: 0 });
    at(5000 + SWEEP_GRACE_MS);
    expect(await sweep(id)).toMatchObject({ queued: 1, errors: 0 });
    expect(await fixtures.queues.forOtp(id).getJobState(id)).toBe('waiting');
    // the new run resumes the attempt, with its request id: a provider that deduplicates sends it once
    expect(await fixtures.delivery.begin(id, ['twilio', 'octopush'], 5000)).toMatchObject({
      kind: 'go',
      attempt: 2,
      provider: 'twilio',
      requestAttempt: 1,
    });
  });

  it('a resend job that failed for good after a retryable failure is queued again under its own id', async () => {
    const { id } = await fixtures.accepted('twilio', 'SM-lost-resend');
    const reports = reportRepo();
    const report = { provider: 'twilio', messageId: 'SM-lost-resend', providerStatus: 'undelivered' } as const;
    await reports.apply({ ...report, status: 'undelivered', errorCode: '30003', at: T0 });
    await enqueueResend(fixtures.queues, id, 1);
    expect(await fixtures.delivery.begin(id, ['twilio', 'octopush'], 5000, undefined, 1)).toMatchObject({
      kind: 'go',
      attempt: 2,
      provider: 'octopush',
    });
    // the provider failed; the job would park for its retry, but dies instead
    await fixtures.delivery.failed(id, 2, 'octopush', 'retryable', 'TIMEOUT');
    await failForGood(id, resendJobId(id, 1));
    at(5000 + SWEEP_GRACE_MS);
    expect(await sweep(id)).toMatchObject({ queued: 1, errors: 0 });
    expect(await fixtures.queues.forOtp(id).getJobState(resendJobId(id, 1))).toBe('waiting');
    expect(await job(id)).toBeUndefined();
  });

  it('leaves a job parked for its retry alone, and an accepted attempt leaves the list', async () => {
    const { id } = await fixtures.created();
    const queue = fixtures.queues.forOtp(id);
    await queue.add('send', { otpId: id }, { jobId: id, delay: 600_000 });
    await fixtures.delivery.begin(id, ['twilio'], 5000);
    await fixtures.delivery.failed(id, 1, 'twilio', 'retryable', 'TIMEOUT');
    at(5000 + SWEEP_GRACE_MS);
    expect(await sweep(id)).toMatchObject({ queued: 0, gaveUp: 0 });
    expect(await queue.getJobState(id)).toBe('delayed');
    expect(await queue.getJobCounts('waiting', 'delayed')).toEqual({ waiting: 0, delayed: 1 });
    // looked at again later, while the job is parked
    expect(await listed(id)).toBe(T0 + 5000 + SWEEP_GRACE_MS + SWEEP_RELIST_MS);

    // a provider that refused as misconfigured: the parked job tries the next one, and no resend job is added
    const refused = await fixtures.created();
    // its own queue: on a cluster the two OTPs may be in different shards
    const refusedQueue = fixtures.queues.forOtp(refused.id);
    await refusedQueue.add('send', { otpId: refused.id }, { jobId: refused.id, delay: 600_000 });
    await fixtures.delivery.begin(refused.id, ['twilio', 'octopush'], 5000);
    await fixtures.delivery.failed(refused.id, 1, 'twilio', 'misconfigured', '21408');
    at(2 * (5000 + SWEEP_GRACE_MS));
    expect(await sweep(refused.id)).toMatchObject({ queued: 0, gaveUp: 0 });
    expect(await job(refused.id, resendJobId(refused.id, 1))).toBeUndefined();
    expect(await refusedQueue.getJobState(refused.id)).toBe('delayed');

    const sent = await fixtures.accepted('twilio', 'SM-accepted');
    expect(await listed(sent.id)).toBeNull();
    expect(await fixtures.record(sent.id)).not.toHaveProperty(F.sendJob);
  });
});

describe('sweepDue: near expiry', () => {
  it('does not end an OTP whose job is parked for a last retry: the job decides when no try is worth it', async () => {
    const { id } = await fixtures.created({ ttlMs: 20_000 });
    await fixtures.queues.forOtp(id).add('send', { otpId: id }, { jobId: id, delay: 4000 });
    await fixtures.delivery.begin(id, ['twilio'], 5000);
    await fixtures.delivery.failed(id, 1, 'twilio', 'retryable', 'TIMEOUT');
    // 5 s before expiry: too late for the sweep to queue a resend, not for the parked job's retry
    at(5000 + SWEEP_GRACE_MS);
    expect(await sweep(id)).toMatchObject({ queued: 0, gaveUp: 0 });
    expect(await fixtures.record(id)).toMatchObject({ [F.status]: 'pending' });
    expect(failed).toEqual([]);
  });
});

describe('sweepDue: a round spread over time (what the worker runs)', () => {
  /** Two OTPs whose jobs were lost, in two partitions, read in that order one partition at a time. */
  const twoLost = async () => {
    const first = await fixtures.created();
    let second = await fixtures.created();
    while (partitionOf(second.id) === partitionOf(first.id)) second = await fixtures.created();
    at(SWEEP_GRACE_MS + 1);
    return { first: first.id, second: second.id };
  };
  const spreadSweep = (
    ids: readonly string[],
    spreadMs: number,
    more: { signal?: AbortSignal; startAt?: number } = {},
  ) =>
    sweepDue(
      { redis: store.redis, ks: store.ks, queues: fixtures.queues, circuits, now },
      { partitions: ids.map(partitionOf), concurrency: 1, spreadMs, ...more },
    );
  const until = async (check: () => Promise<boolean>) => {
    while (!(await check())) await new Promise((r) => setTimeout(r, 5));
  };

  it('reads its partitions evenly over the spread, from where it is told to start, and handles every entry', async () => {
    const { first, second } = await twoLost();
    const started = Date.now();
    // two partitions over 3 s: the one it starts at at once, the other 1.5 s later
    const round = spreadSweep([first, second], 3000, { startAt: 1 });
    await until(async () => (await job(second)) !== undefined);
    expect(Date.now() - started).toBeLessThan(1200);
    expect(await job(first)).toBeUndefined();
    expect(await round).toEqual({ queued: 2, gaveUp: 0, receiptTimeouts: 0, events: 0, errors: 0 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1490);
    expect((await job(first))?.name).toBe('send');
  });

  it('ends when its signal aborts, without waiting out the spread; what it did not read waits for the next round', async () => {
    const { first, second } = await twoLost();
    const stop = new AbortController();
    const started = Date.now();
    const round = spreadSweep([first, second], 20_000, { signal: stop.signal });
    await until(async () => (await job(first)) !== undefined);
    stop.abort();
    expect(await round).toMatchObject({ queued: 1, errors: 0 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await job(second)).toBeUndefined();
    expect(await listed(second)).not.toBeNull();
    expect(await spreadSweep([second], 0)).toMatchObject({ queued: 1 });
  });
});
