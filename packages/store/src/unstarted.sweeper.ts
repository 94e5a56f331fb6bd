import type { SendJobData } from '@otp-gateway/core';
import type { Redis } from 'ioredis';
import { keys } from './keys.js';
import { enqueueSend, type SendQueue } from './queues.js';

/**
 * Finds OTPs accepted more than `graceMs` ago whose send job never started and queues it again (same job id,
 * so a job that is merely waiting is not duplicated). It covers an API that stopped, or lost Redis, between
 * storing the OTP and adding its job: the accepted code still goes out. Returns how many jobs it queued.
 */
export async function sweepUnstarted(
  redis: Redis,
  queue: SendQueue,
  opts: { now: number; graceMs?: number; minLifeMs?: number; batch?: number },
): Promise<number> {
  const { now, graceMs = 10_000, minLifeMs = 15_000, batch = 200 } = opts;
  const ids = await redis.zrangebyscore(keys.unstarted(), '-inf', now - graceMs, 'LIMIT', 0, batch);
  let queued = 0;
  for (const id of ids) {
    const [status, na, to, locale, sealed, exp, cc] = await redis.hmget(
      keys.otp(id),
      'status',
      'na',
      'phone',
      'locale',
      'sealed',
      'exp',
      'cc',
    );
    if (status === 'pending' && na === '0' && to && sealed && Number(exp) > now + minLifeMs) {
      const data: SendJobData = {
        otpId: id,
        to,
        locale: locale ?? 'en',
        sealedCode: sealed,
        expiresAt: Number(exp),
        callingCode: cc ?? '',
      };
      await enqueueSend(queue, data);
      queued++;
    }
    await redis.zrem(keys.unstarted(), id);
  }
  return queued;
}
