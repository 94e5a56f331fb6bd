import type { SendJobData } from '@otp-gateway/core';
import type { Redis } from 'ioredis';
import { resendJobId } from './callbacks.repo.js';
import type { DeliveryRepo } from './delivery.repo.js';
import { keys, MIN_RESEND_LIFE_MS } from './keys.js';
import { enqueueSend, type SendQueue } from './queues.js';

/**
 * Finds OTPs listed more than `graceMs` ago whose send job never started and queues it again (same job id,
 * so a job that is merely waiting is not duplicated). It covers an API that stopped, or lost Redis, between
 * storing the OTP and adding its job, and a resend after non-delivery that the callbacks app could not queue:
 * the code still goes out. One that can no longer go out before expiry, and never went out, ends failed.
 * Returns how many jobs it queued.
 */
export async function sweepUnstarted(
  redis: Redis,
  queue: SendQueue,
  opts: { now: number; delivery: Pick<DeliveryRepo, 'giveUp'>; graceMs?: number; minLifeMs?: number; batch?: number },
): Promise<number> {
  const { now, delivery, graceMs = 10_000, minLifeMs = MIN_RESEND_LIFE_MS, batch = 200 } = opts;
  const ids = await redis.zrangebyscore(keys.unstarted(), '-inf', now - graceMs, 'LIMIT', 0, batch);
  let queued = 0;
  for (const id of ids) {
    const [status, na, to, locale, sealed, exp, cc, acc] = await redis.hmget(
      keys.otp(id),
      'status',
      'na',
      'phone',
      'locale',
      'sealed',
      'exp',
      'cc',
      'acc',
    );
    const attempts = Number(na ?? 0);
    const lastOutcome = attempts > 0 ? await redis.hget(keys.otp(id), `a${attempts}.o`) : null;
    // Never sent, or its counting message reported undelivered and the resend was asked for.
    const waiting = attempts === 0 || (!acc && ['undelivered', 'failed'].includes(lastOutcome ?? ''));
    if (status === 'pending' && waiting && Number(exp) <= now + minLifeMs) {
      await delivery.giveUp(id, now);
    } else if (status === 'pending' && waiting && to && sealed) {
      const data: SendJobData = {
        otpId: id,
        to,
        locale: locale ?? 'en',
        sealedCode: sealed,
        expiresAt: Number(exp),
        callingCode: cc ?? '',
      };
      if (attempts === 0) await enqueueSend(queue, data);
      else await queue.add('send', data, { jobId: resendJobId(id, attempts) });
      queued++;
    }
    await redis.zrem(keys.unstarted(), id);
  }
  return queued;
}
