import {
  deriveKeys,
  EnvReader,
  encryptCode,
  hashCode,
  newOtpId,
  numberToken,
  readGuardsConfig,
} from '@otp-gateway/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from '../../../test/support/redis.js';
import { createCircuits } from './delivery/circuit.js';
import { createDeliveryRepo } from './delivery/delivery.repo.js';
import { createMessageIndex } from './delivery/messages.js';
import { createReportRepo } from './delivery/reports.js';
import { sweepDue } from './delivery/sweep.js';
import { createStatusEventQueue, createStatusEvents } from './events/status-events.js';
import { createSendGuards } from './guards/guards.js';
import { createSendQueues } from './jobs/send-jobs.js';
import { PARTITIONS, shardTag, slotOf } from './keyspace.js';
import { createIdempotencyStore } from './otp/idempotency.js';
import { createOtpRepo } from './otp/otp.repo.js';
import { createAddressLimiter, createRequestLimiter } from './otp/request-limits.js';
import type { RedisClient } from './redis/connection.js';
import { SCRIPTS } from './redis/script.js';

/**
 * The key layout, checked against a real Redis: every script each repository runs touches keys of one slot only
 * (what Redis Cluster requires of an atomic operation), and every script starts with `#!lua`, so Redis 7 refuses
 * a key of another slot even on a single node. The calls are recorded by a proxy around the client.
 */
interface Call {
  readonly script: string;
  readonly keys: readonly string[];
}

function recording(redis: RedisClient, calls: Call[]): RedisClient {
  // scripts go out as EVALSHA <sha> (or EVAL <source> when the server does not know them yet)
  const byShaOrSource = new Map(SCRIPTS.flatMap((s) => [[s.sha, s.name] as const, [s.source, s.name] as const]));
  return new Proxy(redis, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if ((prop === 'evalsha' || prop === 'eval') && typeof value === 'function') {
        return (...args: (string | number)[]) => {
          const script = byShaOrSource.get(String(args[0]));
          const n = Number(args[1]);
          if (script) calls.push({ script, keys: args.slice(2, 2 + n).map(String) });
          return value.apply(target, args);
        };
      }
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

const keys = deriveKeys('layout-test-secret-0123456789abcdefghijklmnop');
let store: IsolatedStore;
const calls: Call[] = [];

beforeAll(async () => {
  store = await isolatedRedis();
  const redis = recording(store.redis, calls);
  const ks = store.ks;
  const repo = createOtpRepo(redis, ks, {
    rules: { maxFailures: 10, lockMs: 60_000, cooldownMs: 0, maxSends: 100, windowMs: 3_600_000 },
    retentionMs: 60_000,
  });
  const circuits = createCircuits(redis, ks, { failureThreshold: 1, cooldownMs: 1, ratePerSecond: { twilio: 100 } });
  const messages = createMessageIndex(redis, ks);
  const delivery = createDeliveryRepo(
    { redis, ks, circuits, messages },
    { leaseMs: 5000, receiptAfterMs: 1, messageTtlMs: 60_000 },
  );
  const eventQueue = createStatusEventQueue(store.redis, ks);
  const events = createStatusEvents({ redis, ks, queue: eventQueue });
  const reports = createReportRepo({ redis, ks, messages, circuits, events });
  const queues = createSendQueues(store.redis, ks, { sendShards: 1, keepCompleted: 10, keepFailedSeconds: 60 });

  // One OTP through every step a user's OTP can take: sent, refused, failed over, reported, swept, verified.
  await createRequestLimiter(redis, ks, { ipPerMinute: 10, keyPerMinute: 10 }).hit('192.0.2.1', 'shop');
  const callbacks = createAddressLimiter(redis, ks, 'cb', 10);
  await callbacks.refused('192.0.2.1');
  const phone = '+33612345678';
  const token = numberToken(keys, 'shop', phone);
  const id = newOtpId(token);
  await createIdempotencyStore(redis, ks).claim('shop', 'idem-1', 'fp', id, 60_000);
  const create = () =>
    repo.create({
      id,
      keyName: 'shop',
      phoneNumber: phone,
      codeHash: hashCode(keys, id, '123456'),
      sealedCode: encryptCode(keys, id, '123456'),
      ttlMs: 300_000,
      maxAttempts: 5,
      callingCode: '33',
      country: 'FR',
      locale: 'fr',
      // status events on: the outbox entries and the expiry check are walked too
      events: true,
    });
  // the abuse guards: a send counted, its approval, a refusal, and a send taken back
  const guards = createSendGuards(
    redis,
    ks,
    readGuardsConfig(new EnvReader({ GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '1', GUARD_DAILY_SMS_PER_KEY: '*=5' }), []),
  );
  const target = { keyName: 'shop', phoneNumber: phone, country: 'FR', callingCode: '33' };
  await guards.send(target);
  await guards.approved(target);
  const taken = await guards.send(target);
  const refused = await guards.send(target);
  if (refused.kind !== 'refused' || taken.kind !== 'ok') throw new Error('guard did not refuse');
  await taken.undo();
  // an operator lifts the block
  for (const block of await guards.blocks()) await guards.lift(block.id);
  await create();
  await repo.read({ by: 'phone', token }, 'shop');
  await reports.apply({
    provider: 'twilio',
    messageId: 'SM-early',
    status: 'sent',
    providerStatus: 'sent',
    errorCode: null,
    at: 0,
  });
  const first = await delivery.begin(id, ['twilio', 'octopush'], 5000);
  if (first.kind !== 'go') throw new Error(`begin: ${first.kind}`);
  await delivery.failed(id, first.attempt, first.provider, 'retryable', 'e1');
  const second = await delivery.begin(id, ['twilio', 'octopush'], 5000);
  if (second.kind !== 'go') throw new Error(`begin again: ${second.kind}`);
  await delivery.accepted(id, second.attempt, second.provider, {
    messageId: 'SM-1',
    providerStatus: 'queued',
    hadFailures: true,
    // its provider tells the cost later: the sweep below queues its cost job
    costAfterMs: 1000,
  });
  // the provider tells the message's cost later (the cost job)
  expect(await delivery.costKnown(id, second.attempt, { amount: 0.0079, currency: 'USD' })).toBe(true);
  // No receipt in time: the sweep's receipt check; then a late report; then the resend the check listed.
  const partitions = [Number.parseInt(id.slice(4, 7), 16)];
  await sweepDue({ redis, ks, queues, circuits, now: () => Date.now() + 60_000 }, { partitions });
  await reports.apply({
    provider: second.provider,
    messageId: 'SM-1',
    status: 'undelivered',
    providerStatus: 'x',
    errorCode: '1',
    at: 0,
  });
  await sweepDue({ redis, ks, queues, circuits, now: () => Date.now() + 200_000 }, { partitions });
  // past its expiry: the sweep notices it (otp.expired) and publishes what was left listed
  await sweepDue({ redis, ks, queues, circuits, events, now: () => Date.now() + 400_000 }, { partitions });
  await delivery.giveUp(id);
  await circuits.states(['twilio', 'octopush']);
  await repo.verify({ by: 'id', id }, 'shop', () => 'wrong');
  await queues.close();
  await eventQueue.close();
});

afterAll(async () => {
  await closeRedisClients(store?.redis);
});

describe('the key layout', () => {
  it('every script starts with #!lua and names its keys and arguments in a header', () => {
    expect(SCRIPTS.length).toBeGreaterThan(10);
    for (const s of SCRIPTS) {
      expect(s.source.startsWith('#!lua\n'), s.name).toBe(true);
      expect(s.source, s.name).toMatch(/^-- KEYS: .+$/m);
      expect(s.source, s.name).toMatch(/^-- ARGV: .+$/m);
    }
  });

  it('every script the repositories ran touched keys of one slot', () => {
    expect(calls.length).toBeGreaterThan(10);
    for (const c of calls) {
      const slots = new Set(c.keys.map(slotOf));
      expect(slots.size, `${c.script} ${c.keys.join(' ')}`).toBe(1);
    }
  });

  it('the walk above ran every script the store defines (none escapes the check)', () => {
    const ran = new Set(calls.map((c) => c.script));
    expect(SCRIPTS.map((s) => s.name).filter((n) => !ran.has(n))).toEqual([]);
  });

  it('OTP partitions and send queue shards spread over the slot space', () => {
    const slots = new Set(
      Array.from({ length: PARTITIONS }, (_, p) => slotOf(`{p${p.toString(16).padStart(3, '0')}}`)),
    );
    // 4096 partitions cover thousands of distinct slots: every master of a cluster holds many.
    expect(slots.size).toBeGreaterThan(3500);
    for (const shards of [1, 3, 4, 8]) {
      for (let s = 0; s < shards; s++) {
        const slot = slotOf(`{${shardTag(s, shards)}}`);
        expect(slot).toBeGreaterThanOrEqual(Math.floor((s * 16384) / shards));
        expect(slot).toBeLessThan(Math.floor(((s + 1) * 16384) / shards));
      }
    }
  });
});
