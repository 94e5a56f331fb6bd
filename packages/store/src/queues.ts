import { QUEUES, type SendJobData } from '@otp-gateway/core';
import { type JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';

/**
 * Options of every send job. The OTP id is the job id, so adding the same OTP twice cannot queue a second SMS.
 * Retries are BullMQ's (`attempts`, with the worker's `otp` backoff strategy: exponential with jitter); the worker
 * also stops retrying once the OTP has expired. Finished jobs are removed on a bounded schedule.
 */
export const SEND_JOB_OPTIONS: Readonly<JobsOptions> = Object.freeze({
  attempts: 40,
  backoff: { type: 'otp' },
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
});

export type SendQueue = Queue<SendJobData, void, 'send'>;

/** The send queue, for producers (the API) and for the dashboard. */
export function createSendQueue(connection: Redis): SendQueue {
  return new Queue<SendJobData, void, 'send'>(QUEUES.send, {
    connection,
    defaultJobOptions: SEND_JOB_OPTIONS,
  });
}

/** Adds the send job for an OTP (idempotent by job id). */
export async function enqueueSend(queue: SendQueue, data: SendJobData): Promise<void> {
  await queue.add('send', data, { jobId: data.otpId });
}
