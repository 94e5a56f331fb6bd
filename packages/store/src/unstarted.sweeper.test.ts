import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeRedisClients, isolatedRedis } from '../../../test/support/redis.js';
import { createDeliveryRepo } from './delivery.repo.js';
import { keys } from './keys.js';
import { createSendQueue, type SendQueue } from './queues.js';
import { sweepUnstarted } from './unstarted.sweeper.js';

let redis: Redis;
let queue: SendQueue;
const deliveryRepo = () =>
  createDeliveryRepo(redis, { failureThreshold: 5, cooldownMs: 1000, leaseMs: 7000 }, { twilio: 0, octopush: 0 });
const T0 = Date.now();

beforeAll(async () => {
  ({ redis } = await isolatedRedis());
  queue = createSendQueue(redis);
});
afterAll(async () => {
  await queue.close();
  await closeRedisClients(redis);
});
beforeEach(() => redis.flushdb());

/** An OTP as the send script stores it, listed as not started. */
async function stored(id: string, created: number, fields: Record<string, string | number> = {}) {
  await redis.hset(keys.otp(id), {
    id,
    key: 'k',
    phone: '+33612345678',
    status: 'pending',
    ds: 'queued',
    provider: '',
    exp: created + 600_000,
    created,
    na: 0,
    sealed: 'sealed-code',
    locale: 'fr',
    cc: '33',
    ...fields,
  });
  await redis.zadd(keys.unstarted(), created, id);
}

describe('sweepUnstarted', () => {
  it('queues the job of an accepted OTP whose job was lost, after the grace period only', async () => {
    await stored('otp_lost', T0);
    expect(await sweepUnstarted(redis, queue, { delivery: deliveryRepo(), now: T0 + 5_000 })).toBe(0);
    expect(await queue.getJob('otp_lost')).toBeUndefined();
    expect(await sweepUnstarted(redis, queue, { delivery: deliveryRepo(), now: T0 + 11_000 })).toBe(1);
    const job = await queue.getJob('otp_lost');
    expect(job?.data).toEqual({
      otpId: 'otp_lost',
      to: '+33612345678',
      locale: 'fr',
      sealedCode: 'sealed-code',
      expiresAt: T0 + 600_000,
      callingCode: '33',
    });
    expect(await redis.zcard(keys.unstarted())).toBe(0);
  });

  it('leaves alone OTPs that ended or started; one about to expire that never went out ends failed', async () => {
    await stored('otp_done', T0, { status: 'approved' });
    await stored('otp_started', T0, { na: 1, 'a1.o': 'sending', acc: '' });
    await stored('otp_late', T0, { exp: T0 + 20_000 });
    expect(await sweepUnstarted(redis, queue, { delivery: deliveryRepo(), now: T0 + 11_000 })).toBe(0);
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 0 });
    expect(await redis.zcard(keys.unstarted())).toBe(0);
    expect(await redis.hget(keys.otp('otp_late'), 'status')).toBe('failed');
    expect(await redis.hget(keys.otp('otp_done'), 'status')).toBe('approved');
  });

  it('queues a resend after non-delivery that the callbacks app could not queue', async () => {
    await stored('otp_resend', T0, { na: 1, 'a1.o': 'undelivered', 'a1.p': 'twilio', acc: '', sent: '1' });
    expect(await sweepUnstarted(redis, queue, { delivery: deliveryRepo(), now: T0 + 11_000 })).toBe(1);
    expect((await queue.getJob('otp_resend-r1'))?.data.otpId).toBe('otp_resend');
  });

  it('does not duplicate a job that is only waiting, and a started job leaves the list', async () => {
    await stored('otp_waiting', T0);
    await queue.add('send', { otpId: 'otp_waiting' } as never, { jobId: 'otp_waiting' });
    await sweepUnstarted(redis, queue, { delivery: deliveryRepo(), now: T0 + 11_000 });
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 1 });

    await stored('otp_begun', T0);
    const delivery = createDeliveryRepo(
      redis,
      { failureThreshold: 5, cooldownMs: 1000, leaseMs: 7000 },
      { twilio: 0, octopush: 0 },
    );
    await delivery.begin('otp_begun', ['twilio'], T0 + 1, 5000);
    expect(await redis.zscore(keys.unstarted(), 'otp_begun')).toBeNull();
  });
});
