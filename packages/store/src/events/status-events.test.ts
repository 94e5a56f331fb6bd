import { deriveKeys, encryptCode, hashCode, newOtpId, numberToken } from '@otp-gateway/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from '../../../../test/support/redis.js';
import { createCircuits } from '../delivery/circuit.js';
import { createDeliveryRepo } from '../delivery/delivery.repo.js';
import { createMessageIndex } from '../delivery/messages.js';
import { createReportRepo } from '../delivery/reports.js';
import { sweepDue } from '../delivery/sweep.js';
import { createSendQueues, type SendQueues } from '../jobs/send-jobs.js';
import { DUE, EVENT_GRACE_MS, otpKeys } from '../otp/otp.record.js';
import { createOtpRepo, type OtpRepo } from '../otp/otp.repo.js';
import {
  createStatusEventQueue,
  createStatusEvents,
  type StatusEventQueue,
  type StatusEvents,
  webhookIdOf,
} from './status-events.js';

// Every script runs on the test's clock, far from the Redis node's.
const T0 = 1_800_000_000_000;
let t = T0;
const now = () => t;
const keys = deriveKeys('status-events-test-secret-0123456789abcdefghij');
const rules = { maxFailures: 10, lockMs: 60_000, cooldownMs: 0, maxSends: 100, windowMs: 3_600_000 };

let store: IsolatedStore;
let queue: StatusEventQueue;
let sendQueues: SendQueues;
let events: StatusEvents;
/** The API's repo, publishing as it does. */
let repo: OtpRepo;
/** A repo whose process "dies" after each script: the change is recorded, nothing is published. */
let crashing: OtpRepo;
let n = 0;

beforeEach(async () => {
  t = T0;
  store = await isolatedRedis();
  queue = createStatusEventQueue(store.redis, store.ks);
  sendQueues = createSendQueues(store.redis, store.ks, { sendShards: 1, keepCompleted: 10, keepFailedSeconds: 60 });
  events = createStatusEvents({ redis: store.redis, ks: store.ks, queue }, { now });
  repo = createOtpRepo(store.redis, store.ks, { rules, retentionMs: 60_000 }, { events });
  crashing = createOtpRepo(store.redis, store.ks, { rules, retentionMs: 60_000 });
});

afterEach(async () => {
  await queue.close();
  await sendQueues.close();
  await closeRedisClients(store.redis);
});

async function create(opts: { events: boolean; ttlMs?: number; metadata?: string }) {
  const phone = `+336${String(10_000_000 + ++n)}`;
  const id = newOtpId(numberToken(keys, 'shop', phone));
  const r = await repo.create(
    {
      id,
      keyName: 'shop',
      phoneNumber: phone,
      codeHash: hashCode(keys, id, '123456'),
      sealedCode: encryptCode(keys, id, '123456'),
      ttlMs: opts.ttlMs ?? 300_000,
      maxAttempts: 2,
      callingCode: '33',
      country: 'FR',
      locale: 'fr',
      metadata: opts.metadata ?? '',
      events: opts.events,
    },
    t,
  );
  if (r.kind !== 'created') throw new Error(r.kind);
  return { id, phone };
}

const listedEvents = async (id: string) =>
  (await store.redis.zrange(otpKeys(store.ks, id).due, 0, -1)).filter((m) => m.startsWith(DUE.event));
const sweep = (id: string) =>
  sweepDue(
    {
      redis: store.redis,
      ks: store.ks,
      queues: sendQueues,
      circuits: createCircuits(store.redis, store.ks, { failureThreshold: 5, cooldownMs: 1000, ratePerSecond: {} }),
      events,
      now,
    },
    { partitions: [Number.parseInt(id.slice(4, 7), 16)] },
  );
const eventJob = async (id: string, name: Parameters<typeof webhookIdOf>[1], attempt = 0) =>
  queue.getJob(webhookIdOf(id, name, attempt));

describe('status events: the outbox in the due sets', () => {
  it('an approve publishes otp.approved at once: one job, its body without the code, the entry gone', async () => {
    const { id, phone } = await create({ events: true, metadata: '{"userId":"u1"}' });
    expect((await repo.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, '123456'), t)).kind).toBe('approved');
    const job = await eventJob(id, 'approved');
    expect(job?.name).toBe('otp.approved');
    expect(job?.data.keyName).toBe('shop');
    const body = JSON.parse(String(job?.data.body));
    expect(body).toMatchObject({
      type: 'otp.approved',
      data: { id, status: 'approved', deliveryStatus: 'queued', phoneNumber: phone, metadata: { userId: 'u1' } },
    });
    expect(job?.data.body).not.toContain('123456');
    expect(await listedEvents(id)).toEqual([]);
  });

  it('a locking wrong code publishes otp.locked', async () => {
    const { id } = await create({ events: true });
    await repo.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, '000000'), t);
    expect(await eventJob(id, 'locked')).toBeUndefined();
    await repo.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, '000001'), t);
    expect(JSON.parse(String((await eventJob(id, 'locked'))?.data.body)).data.status).toBe('locked');
  });

  it('an event whose process died after the change is published by the sweep after the grace, once', async () => {
    const { id } = await create({ events: true });
    await crashing.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, '123456'), t);
    expect(await listedEvents(id)).toEqual([`${DUE.event}approved:${id}:0`]);
    t = T0 + EVENT_GRACE_MS - 1000;
    expect((await sweep(id)).events).toBe(0);
    expect(await eventJob(id, 'approved')).toBeUndefined();
    t = T0 + EVENT_GRACE_MS + 1;
    expect((await sweep(id)).events).toBe(1);
    expect((await eventJob(id, 'approved'))?.name).toBe('otp.approved');
    expect(await listedEvents(id)).toEqual([]);
    expect((await sweep(id)).events).toBe(0);
  });

  it('an OTP nobody verifies is noticed expired by the sweep: otp.expired, once', async () => {
    const { id } = await create({ events: true, ttlMs: 60_000 });
    // as if its send job had started (else the sweep gives it up as never sent: otp.failed)
    await store.redis.zrem(otpKeys(store.ks, id).due, DUE.unstarted + id);
    t = T0 + 59_000;
    expect((await sweep(id)).events).toBe(0);
    t = T0 + 60_001;
    expect((await sweep(id)).events).toBe(1);
    const body = JSON.parse(String((await eventJob(id, 'expired'))?.data.body));
    expect(body).toMatchObject({ type: 'otp.expired', data: { id, status: 'expired' } });
    t = T0 + 120_000;
    expect((await sweep(id)).events).toBe(0);
    expect(await queue.count()).toBe(1);
  });

  it('an OTP approved before its expiry gets no otp.expired', async () => {
    const { id } = await create({ events: true, ttlMs: 60_000 });
    await repo.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, '123456'), t);
    t = T0 + 61_000;
    expect((await sweep(id)).events).toBe(0);
    expect(await eventJob(id, 'expired')).toBeUndefined();
  });

  it('a provider acceptance publishes otp.sent of that attempt; a permanent refusal otp.failed', async () => {
    const circuits = createCircuits(store.redis, store.ks, {
      failureThreshold: 5,
      cooldownMs: 1000,
      ratePerSecond: {},
    });
    const delivery = createDeliveryRepo(
      { redis: store.redis, ks: store.ks, circuits, messages: createMessageIndex(store.redis, store.ks), events, now },
      { leaseMs: 5000, receiptAfterMs: 0, messageTtlMs: 60_000 },
    );
    const { id } = await create({ events: true });
    const go = await delivery.begin(id, ['twilio'], 5000);
    if (go.kind !== 'go') throw new Error(go.kind);
    await delivery.accepted(id, go.attempt, 'twilio', {
      messageId: 'SM1',
      providerStatus: 'queued',
      hadFailures: false,
    });
    const sent = JSON.parse(String((await eventJob(id, 'sent', 1))?.data.body));
    expect(sent.data).toMatchObject({ attempt: 1, provider: 'twilio', deliveryStatus: 'sent', status: 'pending' });

    const other = await create({ events: true });
    const b = await delivery.begin(other.id, ['twilio'], 5000);
    if (b.kind !== 'go') throw new Error(b.kind);
    expect((await delivery.failed(other.id, b.attempt, 'twilio', 'permanent', '21211')).ended).toBe(true);
    const failed = JSON.parse(String((await eventJob(other.id, 'failed'))?.data.body));
    expect(failed).toMatchObject({ type: 'otp.failed', data: { status: 'failed', deliveryStatus: 'failed' } });
    expect(await listedEvents(other.id)).toEqual([]);
  });

  it('publishes only what a step listed: with events off, no publish call at all (no round trip per OTP)', async () => {
    const calls: string[] = [];
    const counting: StatusEvents = {
      publish: (id, name, attempt) => {
        calls.push(name);
        return events.publish(id, name, attempt);
      },
      publishMember: (m) => events.publishMember(m),
    };
    const circuits = createCircuits(store.redis, store.ks, {
      failureThreshold: 5,
      cooldownMs: 1000,
      ratePerSecond: {},
    });
    const messages = createMessageIndex(store.redis, store.ks);
    const delivery = createDeliveryRepo(
      { redis: store.redis, ks: store.ks, circuits, messages, events: counting, now },
      { leaseMs: 5000, receiptAfterMs: 0, messageTtlMs: 60_000 },
    );
    const reports = createReportRepo({ redis: store.redis, ks: store.ks, messages, circuits, events: counting });
    const otpRepo = createOtpRepo(store.redis, store.ks, { rules, retentionMs: 60_000 }, { events: counting });
    const life = async (on: boolean, code: string) => {
      const { id, phone } = await create({ events: on });
      const go = await delivery.begin(id, ['twilio'], 5000);
      if (go.kind !== 'go') throw new Error(go.kind);
      const sid = `SM${on ? 'on' : 'off'}${++n}`;
      await delivery.accepted(id, go.attempt, 'twilio', {
        messageId: sid,
        providerStatus: 'queued',
        hadFailures: false,
      });
      const r = await reports.apply({
        provider: 'twilio',
        messageId: sid,
        status: 'delivered',
        providerStatus: 'delivered',
        errorCode: null,
        at: t,
        phoneNumber: phone,
      });
      expect(r.kind).toBe('applied');
      return otpRepo.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, code), t);
    };
    expect((await life(false, '123456')).kind).toBe('approved');
    expect((await life(false, '000000')).kind).toBe('wrong');
    expect((await life(false, '000000')).kind).toBe('wrong');
    expect(calls).toEqual([]);
    expect((await life(true, '123456')).kind).toBe('approved');
    expect(calls).toEqual(['sent', 'delivered', 'approved']);
    calls.length = 0;
    // two wrong codes lock an OTP of two attempts: the lock is published, the first wrong code lists nothing
    const { id } = await create({ events: true });
    await otpRepo.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, '000000'), t);
    await otpRepo.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, '000000'), t);
    expect(calls).toEqual(['locked']);
    calls.length = 0;
    // a permanent refusal ends the OTP failed; so does giving up: published only with events on
    for (const on of [false, true]) {
      const refused = await create({ events: on });
      const go = await delivery.begin(refused.id, ['twilio'], 5000);
      if (go.kind !== 'go') throw new Error(go.kind);
      expect((await delivery.failed(refused.id, go.attempt, 'twilio', 'permanent', '21211')).ended).toBe(true);
      const stuck = await create({ events: on });
      expect((await delivery.giveUp(stuck.id)).ended).toBe(true);
    }
    expect(calls).toEqual(['failed', 'failed']);
  });

  it('with events off nothing is listed and nothing is queued', async () => {
    const { id } = await create({ events: false, ttlMs: 60_000 });
    const due = await store.redis.zrange(otpKeys(store.ks, id).due, 0, -1);
    expect(due.filter((m) => m.startsWith(DUE.event) || m.startsWith(DUE.expiry))).toEqual([]);
    await repo.verify({ by: 'id', id }, 'shop', (i) => hashCode(keys, i, '123456'), t);
    t = T0 + 61_000;
    await sweep(id);
    expect(await queue.count()).toBe(0);
  });
});
