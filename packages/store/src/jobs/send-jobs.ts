import { tokenOfOtpId } from '@otp-gateway/core';
import { type JobsOptions, Queue } from 'bullmq';
import { type Keyspace, shardTag } from '../keyspace.js';
import type { RedisClient } from '../redis/connection.js';
import { reportStoreError } from '../redis/errors.js';

/**
 * Every kind of send job, its id and its enqueue function: nothing else adds send jobs.
 *
 * - `send`: the first send of an OTP. Job id = the OTP id, so adding it twice (the API, then the sweep) queues one.
 * - `resend`: after attempt `after` of the OTP was not delivered (a negative receipt, or none in time). Job id
 *   `<otpId>-r<after>`: one resend per attempt.
 *
 * A job carries only the OTP id: the number, the locale and the sealed code are read from the OTP record when the
 * job starts (delivery plan), which keeps a queued job small. Receipt checks are not jobs: an accepted attempt
 * is listed in its partition's due set and the sweep looks at it when its time comes (delivery/sweep.ts).
 *
 * Shards: `SEND_QUEUE_SHARDS` queues `otp-send-<n>`, each under its own hash tag (keyspace.ts, shardTag), so a
 * cluster's masters share the queue work. An OTP always goes to the shard of its partition, so job-id
 * de-duplication holds across its send and resends. Workers consume every shard. Changing the number of shards
 * moves OTPs to other queues: drain the queues first (README, upgrading).
 */
export type SendJobKind = 'send' | 'resend';

export interface SendJobData {
  readonly otpId: string;
  /** For a resend: the attempt that was not delivered. */
  readonly after?: number;
}

export type SendQueue = Queue<SendJobData, void, SendJobKind>;

export interface SendQueueSettings {
  readonly sendShards: number;
  readonly keepCompleted: number;
  readonly keepFailedSeconds: number;
}

/** The send queues, one per shard, and the shard of each OTP. */
export interface SendQueues {
  readonly shards: readonly SendQueue[];
  forOtp(otpId: string): SendQueue;
  close(): Promise<void>;
}

/** Queue name of shard n (what Bull Board and the metrics show). */
export const sendQueueName = (shard: number): string => `otp-send-${shard}`;

/** BullMQ's prefix of shard n: the gateway's key prefix and the shard's hash tag. */
export const sendQueuePrefix = (ks: Keyspace, shard: number, shards: number): string =>
  `${ks.prefix}:{${shardTag(shard, shards)}}`;

/** The shard of an OTP: its partition (the first three hex digits of its number token) modulo the shard count. */
export const shardOf = (otpId: string, shards: number): number =>
  Number.parseInt(tokenOfOtpId(otpId).slice(0, 3), 16) % shards;

/**
 * Options of every send job. Retries are BullMQ's (`attempts`, with the worker's `otp` backoff strategy:
 * exponential with jitter); the worker also stops retrying once the OTP cannot go out in time. Completed jobs
 * are kept by count (memory stays flat), failed ones for a while, for the dashboard.
 */
export function sendJobOptions(s: SendQueueSettings): JobsOptions {
  return {
    attempts: 40,
    backoff: { type: 'otp' },
    removeOnComplete: s.keepCompleted === 0 ? true : { count: s.keepCompleted },
    removeOnFail: { age: s.keepFailedSeconds, count: 10_000 },
  };
}

export function createSendQueues(redis: RedisClient, ks: Keyspace, settings: SendQueueSettings): SendQueues {
  const shards = Array.from(
    { length: settings.sendShards },
    (_, n) =>
      new Queue<SendJobData, void, SendJobKind>(sendQueueName(n), {
        connection: redis,
        prefix: sendQueuePrefix(ks, n, settings.sendShards),
        defaultJobOptions: sendJobOptions(settings),
      }),
  );
  for (const q of shards) q.on('error', (err) => reportStoreError('queue', err));
  return {
    shards,
    forOtp: (otpId) => shards[shardOf(otpId, shards.length)] as SendQueue,
    async close() {
      await Promise.all(shards.map((q) => q.close().catch(() => {})));
    },
  };
}

/** Queues the first send of an OTP (a no-op while its job exists). */
export async function enqueueSend(queues: SendQueues, otpId: string): Promise<void> {
  await queues.forOtp(otpId).add('send', { otpId }, { jobId: otpId });
}

/** Job id of the resend after attempt `after`. */
export const resendJobId = (otpId: string, after: number): string => `${otpId}-r${after}`;

/** Queues the resend that follows a non-delivery of attempt `after` (one per attempt). */
export async function enqueueResend(queues: SendQueues, otpId: string, after: number): Promise<void> {
  await queues.forOtp(otpId).add('resend', { otpId, after }, { jobId: resendJobId(otpId, after) });
}
