import { type ProviderId, type SmsCost, tokenOfOtpId } from '@otp-gateway/core';
import { type JobsOptions, Queue, type WorkerOptions } from 'bullmq';
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
export type SendJobKind = 'send' | 'resend' | 'cost';

export interface SendJobData {
  readonly otpId: string;
  /** For a resend: the attempt that was not delivered. */
  readonly after?: number;
  /** For a cost check: the accepted attempt whose cost its provider tells later. */
  readonly cost?: CostCheck;
}

/** An accepted attempt whose provider tells its cost after the send (SmsProvider.cost): asked by a `cost` job. */
export interface CostCheck {
  readonly attempt: number;
  readonly provider: ProviderId;
  readonly messageId: string;
  /** The number's calling code (the cost metric's label). */
  readonly callingCode: string;
  /** The price table's cost, on the attempt meanwhile, and counted when the provider never tells. */
  readonly table: SmsCost | null;
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
 * Options stored with every send job. Kept tiny on purpose: a job is a Redis hash, and Redis stores a hash
 * compactly (listpack) only while every value is at most 64 bytes (`hash-max-listpack-value`); `opts` with a
 * backoff and the keep-jobs settings was 160 bytes and made each queued job cost 590 bytes instead of about 250.
 * So: provider retries are the worker's own (it parks the job with the delay it chose, see the send processor),
 * BullMQ's `attempts` only covers unexpected errors, and how many finished jobs to keep is the worker's setting
 * (workerKeepJobs).
 */
export const SEND_JOB_OPTIONS: Readonly<JobsOptions> = Object.freeze({ attempts: 5 });

/** How many finished jobs to keep, given to the workers: completed ones by count, failed ones by age. */
export function workerKeepJobs(s: SendQueueSettings): Pick<WorkerOptions, 'removeOnComplete' | 'removeOnFail'> {
  return {
    removeOnComplete: s.keepCompleted === 0 ? { count: 0 } : { count: s.keepCompleted },
    removeOnFail: { age: s.keepFailedSeconds, count: 10_000 },
  };
}

/** BullMQ's event stream per queue is capped: nothing of ours reads it, and it is memory. */
const EVENTS_MAX_LEN = 1000;

export function createSendQueues(redis: RedisClient, ks: Keyspace, settings: SendQueueSettings): SendQueues {
  const shards = Array.from(
    { length: settings.sendShards },
    (_, n) =>
      new Queue<SendJobData, void, SendJobKind>(sendQueueName(n), {
        connection: redis,
        prefix: sendQueuePrefix(ks, n, settings.sendShards),
        defaultJobOptions: SEND_JOB_OPTIONS,
        streams: { events: { maxLen: EVENTS_MAX_LEN } },
        // BullMQ's version check sends INFO once, when the connection is first ready, and the queue's start-up waits
        // on it: on a request connection (700 ms timeout, no retry) a slow or lost answer failed that start-up for
        // good, and every later add of the process with it (each send's job waited for the sweep) until a restart.
        // A queue only adds jobs, it never blocks: it needs nothing the check tells. The workers keep it.
        skipVersionCheck: true,
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

export const costJobId = (otpId: string, attempt: number): string => `${otpId}-c${attempt}`;

/** How a cost job is tried: up to `attempts` times while the provider does not tell yet, BullMQ's retries. */
export interface CostCheckSettings {
  readonly attempts: number;
  /** The first wait between tries (exponential backoff: 1, 2, 4... times it). */
  readonly backoffMs: number;
}

/**
 * Queues the cost job of an accepted attempt (the sweep does, when its `c:` entry is due: the entry is written with
 * the acceptance, so a waiting check costs a due-set member, not a delayed job).
 */
export async function enqueueCostCheck(
  queues: SendQueues,
  otpId: string,
  check: CostCheck,
  settings: CostCheckSettings,
): Promise<void> {
  await queues.forOtp(otpId).add(
    'cost',
    { otpId, cost: check },
    {
      jobId: costJobId(otpId, check.attempt),
      attempts: settings.attempts,
      backoff: { type: 'exponential', delay: settings.backoffMs },
    },
  );
}

/**
 * For the sweep: makes sure a job will run for this OTP. A job with its id that is waiting, delayed or active is
 * left alone; one that already finished (failed for good, or completed and kept) would make an add a no-op, so it
 * is removed first: the OTP, still listed, needs a job. True when a job was queued.
 */
export async function requeue(queues: SendQueues, otpId: string, after: number | null): Promise<boolean> {
  const queue = queues.forOtp(otpId);
  const jobId = after === null ? otpId : resendJobId(otpId, after);
  const existing = await queue.getJob(jobId);
  if (existing) {
    if (!((await existing.isFailed()) || (await existing.isCompleted()))) return false;
    await existing.remove();
  }
  if (after === null) await enqueueSend(queues, otpId);
  else await enqueueResend(queues, otpId, after);
  return true;
}
