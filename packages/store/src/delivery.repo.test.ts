import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeRedisClients, isolatedRedis } from '../../../test/support/redis.js';
import { createDeliveryRepo, type DeliveryRepo } from './delivery.repo.js';
import { keys } from './keys.js';
import { toView } from './otp.view.js';

let redis: Redis;
let repo: DeliveryRepo;
const T0 = 1_800_000_000_000;
const order = ['twilio', 'octopush'] as const;

beforeAll(async () => {
  ({ redis } = await isolatedRedis());
  repo = createDeliveryRepo(
    redis,
    { failureThreshold: 2, cooldownMs: 10_000, leaseMs: 7000 },
    { twilio: 0, octopush: 0 },
  );
});
afterAll(() => closeRedisClients(redis));
beforeEach(() => redis.flushdb());

async function pendingOtp(id: string, exp = T0 + 600_000) {
  await redis.hset(keys.otp(id), {
    id,
    key: 'k',
    phone: '+33612345678',
    status: 'pending',
    ds: 'queued',
    provider: '',
    exp,
    created: T0,
    na: 0,
    sealed: 'x',
    hash: 'h',
  });
}
const view = async (id: string, now = T0) => toView(await redis.hgetall(keys.otp(id)), now);

describe('delivery repo', () => {
  it('records an attempt, then its acceptance, and indexes the message id', async () => {
    await pendingOtp('otp_1');
    const b = await repo.begin('otp_1', order, T0, 5000);
    expect(b).toEqual({ kind: 'go', attempt: 1, provider: 'twilio', requestAttempt: 1 });
    expect((await view('otp_1')).deliveryStatus).toBe('sending');
    expect(await repo.accepted('otp_1', 1, 'twilio', 'SM1', 'queued', T0 + 10)).toEqual([]);
    const v = await view('otp_1');
    expect(v).toMatchObject({ deliveryStatus: 'sent', provider: 'twilio' });
    expect(v.attempts).toEqual([
      expect.objectContaining({
        n: 1,
        provider: 'twilio',
        outcome: 'accepted',
        messageId: 'SM1',
        providerStatus: 'queued',
      }),
    ]);
    expect(await redis.get(keys.message('twilio', 'SM1'))).toBe('otp_1:1');
    // A job picked up again after the send was recorded sends nothing.
    expect(await repo.begin('otp_1', order, T0 + 20, 5000)).toEqual({ kind: 'stop', reason: 'done' });
  });

  it('resumes an attempt a dead worker left in flight: a new record, same provider, same request id', async () => {
    await pendingOtp('otp_2');
    await repo.begin('otp_2', order, T0, 5000);
    // while the send's lease runs, another job of the OTP waits for its outcome
    expect(await repo.begin('otp_2', order, T0 + 1, 5000)).toEqual({ kind: 'busy', ms: 6999 });
    expect(await repo.begin('otp_2', ['octopush', 'twilio'], T0 + 7001, 5000)).toEqual({
      kind: 'go',
      attempt: 2,
      provider: 'twilio',
      requestAttempt: 1,
    });
    // interrupted again: the request id still comes from the first attempt
    expect(await repo.begin('otp_2', order, T0 + 14_002, 5000)).toMatchObject({ attempt: 3, requestAttempt: 1 });
    const v = await view('otp_2');
    expect(v.attempts.map((a) => a.outcome)).toEqual(['interrupted', 'interrupted', 'sending']);
  });

  it('does not resume an interrupted attempt once the OTP is about to expire', async () => {
    await pendingOtp('otp_x', T0 + 10_000);
    await repo.begin('otp_x', order, T0, 5000);
    expect(await repo.begin('otp_x', order, T0 + 7001, 5000)).toEqual({ kind: 'stop', reason: 'too_late' });
    expect((await view('otp_x', T0)).attempts.map((a) => a.outcome)).toEqual(['interrupted']);
  });

  it('keeps an OTP usable when its message went out but no provider can resend it', async () => {
    await pendingOtp('s1');
    await repo.begin('s1', ['twilio'], T0, 5000);
    await repo.accepted('s1', 1, 'twilio', 'SMs1', 'queued', T0);
    expect(await repo.receiptTimedOut('s1', 1, 'twilio', T0 + 120_000)).toBe(true);
    expect(await repo.begin('s1', ['twilio'], T0 + 120_001, 5000)).toEqual({ kind: 'stop', reason: 'exhausted' });
    expect(await repo.giveUp('s1', T0 + 120_002)).toBe(false);
    const v = await view('s1', T0 + 120_003);
    expect(v.status).toBe('pending');
    expect(await redis.hget(keys.otp('s1'), 'acc')).toBe('1');
    // and a permanent refusal from the next provider does not end it either
    await pendingOtp('s2');
    await repo.begin('s2', order, T0, 5000);
    await repo.accepted('s2', 1, 'twilio', 'SMs2', 'queued', T0);
    await repo.receiptTimedOut('s2', 1, 'twilio', T0 + 120_000);
    await repo.begin('s2', order, T0 + 120_001, 5000);
    await repo.failed('s2', 2, 'octopush', 'permanent', '117', T0 + 120_002);
    expect((await view('s2', T0 + 120_003)).status).toBe('pending');
  });

  it('a refusal (misconfigured) is skipped for the OTP but does not count against the provider', async () => {
    for (const id of ['m1', 'm2', 'm3']) {
      await pendingOtp(id);
      await repo.begin(id, order, T0, 5000);
      await repo.failed(id, 1, 'twilio', 'misconfigured', '21408', T0);
    }
    await pendingOtp('m4');
    expect(await repo.begin('m4', order, T0 + 1, 5000)).toMatchObject({ kind: 'go', provider: 'twilio' });
  });

  it('moves to the next provider after a failure, and skips a provider that refused us', async () => {
    await pendingOtp('otp_3');
    await repo.begin('otp_3', order, T0, 5000);
    await repo.failed('otp_3', 1, 'twilio', 'misconfigured', '20003', T0);
    expect(await repo.begin('otp_3', order, T0 + 1, 5000)).toMatchObject({
      kind: 'go',
      attempt: 2,
      provider: 'octopush',
    });
    await repo.failed('otp_3', 2, 'octopush', 'retryable', '500', T0 + 2);
    // twilio refused us for good; octopush failed transiently: it is tried again.
    expect(await repo.begin('otp_3', order, T0 + 3, 5000)).toMatchObject({
      kind: 'go',
      attempt: 3,
      provider: 'octopush',
    });
    await repo.failed('otp_3', 3, 'octopush', 'misconfigured', '102', T0 + 4);
    expect(await repo.begin('otp_3', order, T0 + 5, 5000)).toEqual({ kind: 'stop', reason: 'exhausted' });
  });

  it('opens a circuit after repeated failures for every OTP, lets one probe through after the cool-down', async () => {
    for (const id of ['a', 'b']) {
      await pendingOtp(id);
      await repo.begin(id, ['twilio'], T0, 5000);
      await repo.failed(id, 1, 'twilio', 'retryable', '503', T0);
    }
    await pendingOtp('c');
    expect(await repo.begin('c', ['twilio'], T0 + 1, 5000)).toEqual({ kind: 'wait', ms: 9_999 });
    expect(await repo.begin('c', order, T0 + 1, 5000)).toMatchObject({ kind: 'go', provider: 'octopush' });
    await pendingOtp('d');
    await pendingOtp('e');
    expect(await repo.begin('d', ['twilio'], T0 + 10_001, 5000)).toMatchObject({ kind: 'go', provider: 'twilio' });
    // while the probe is out, others wait
    expect((await repo.begin('e', ['twilio'], T0 + 10_002, 5000)).kind).toBe('wait');
    await repo.accepted('d', 1, 'twilio', 'SMd', 'queued', T0 + 10_003);
    expect(await repo.begin('e', ['twilio'], T0 + 10_004, 5000)).toMatchObject({ kind: 'go', provider: 'twilio' });
  });

  it('keeps each provider under its configured sends per second', async () => {
    const limited = createDeliveryRepo(
      redis,
      { failureThreshold: 2, cooldownMs: 10_000, leaseMs: 7000 },
      { twilio: 2, octopush: 0 },
    );
    const picks: string[] = [];
    for (const id of ['q1', 'q2', 'q3', 'q4']) {
      await pendingOtp(id);
      const b = await limited.begin(id, order, T0 + 100, 5000);
      picks.push(b.kind === 'go' ? b.provider : b.kind);
    }
    expect(picks).toEqual(['twilio', 'twilio', 'octopush', 'octopush']);
    // alone, the limited provider makes the job wait for the next second
    await pendingOtp('q5');
    expect(await limited.begin('q5', ['twilio'], T0 + 100, 5000)).toEqual({ kind: 'wait', ms: 900 });
    expect(await limited.begin('q5', ['twilio'], T0 + 1000, 5000)).toMatchObject({ kind: 'go', provider: 'twilio' });
  });

  it('pauses only the provider that answered 429', async () => {
    await pendingOtp('r1');
    await repo.begin('r1', order, T0, 5000);
    await repo.failed('r1', 1, 'twilio', 'rate_limited', '20429', T0, 30_000);
    await pendingOtp('r2');
    expect(await repo.begin('r2', order, T0 + 5, 5000)).toMatchObject({ kind: 'go', provider: 'octopush' });
    expect(await repo.begin('r1', order, T0 + 5, 5000)).toMatchObject({ kind: 'go', provider: 'octopush' });
  });

  it('sends nothing for an OTP that ended or is about to expire, and gives up only on a pending one', async () => {
    await pendingOtp('x1');
    await redis.hset(keys.otp('x1'), 'status', 'approved');
    expect(await repo.begin('x1', order, T0, 5000)).toEqual({ kind: 'stop', reason: 'approved' });
    expect(await repo.giveUp('x1', T0)).toBe(false);
    await pendingOtp('x2', T0 + 4000);
    expect(await repo.begin('x2', order, T0, 5000)).toEqual({ kind: 'stop', reason: 'too_late' });
    expect(await repo.giveUp('x2', T0)).toBe(true);
    const v = await view('x2');
    expect(v).toMatchObject({ status: 'failed', deliveryStatus: 'failed' });
    expect(await redis.hget(keys.otp('x2'), 'sealed')).toBeNull();
    expect(await repo.begin('nope', order, T0, 5000)).toEqual({ kind: 'stop', reason: 'gone' });
  });

  it('a permanent refusal ends the OTP failed', async () => {
    await pendingOtp('p1');
    await repo.begin('p1', order, T0, 5000);
    await repo.failed('p1', 1, 'twilio', 'permanent', '21211', T0);
    expect(await view('p1')).toMatchObject({ status: 'failed', deliveryStatus: 'failed' });
    expect(Number((await redis.hget(keys.circuit('twilio'), 'fails')) ?? 0)).toBe(0);
  });

  it('after a receipt timeout the code goes out once through each other provider', async () => {
    await pendingOtp('t1');
    await repo.begin('t1', order, T0, 5000);
    await repo.accepted('t1', 1, 'twilio', 'SMt', 'queued', T0);
    expect(await repo.receiptTimedOut('t1', 1, 'twilio', T0 + 120_000)).toBe(true);
    expect(await repo.receiptTimedOut('t1', 1, 'twilio', T0 + 120_001)).toBe(false);
    expect(await repo.begin('t1', order, T0 + 120_002, 5000)).toMatchObject({
      kind: 'go',
      attempt: 2,
      provider: 'octopush',
    });
    await repo.accepted('t1', 2, 'octopush', 'tk', '', T0 + 120_003);
    expect(await repo.receiptTimedOut('t1', 2, 'octopush', T0 + 240_000)).toBe(true);
    expect(await repo.begin('t1', order, T0 + 240_001, 5000)).toEqual({ kind: 'stop', reason: 'exhausted' });
  });

  it('hands back delivery reports that arrived before the message id was known', async () => {
    await pendingOtp('e1');
    await redis.rpush(keys.earlyCallbacks('twilio', 'SMe'), '{"status":"delivered"}');
    await repo.begin('e1', order, T0, 5000);
    expect(await repo.accepted('e1', 1, 'twilio', 'SMe', 'queued', T0)).toEqual(['{"status":"delivered"}']);
    expect(await redis.exists(keys.earlyCallbacks('twilio', 'SMe'))).toBe(0);
  });
});
