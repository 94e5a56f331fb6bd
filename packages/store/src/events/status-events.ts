import {
  type DeliveryStatus,
  decodeMetadata,
  type OtpStatus,
  type ProviderId,
  type StatusEventBody,
  type StatusEventName,
} from '@otp-gateway/core';
import { type JobsOptions, Queue } from 'bullmq';
import type { Keyspace } from '../keyspace.js';
import { ATTEMPT_FIELDS, DUE, OTP_FIELDS, otpKeys } from '../otp/otp.record.js';
import type { RedisClient } from '../redis/connection.js';
import { reportStoreError } from '../redis/errors.js';

/**
 * Status events (status webhooks), from the OTP's change to the job that posts it.
 *
 * The guarantee: an OTP created with events on (`ev`) gets its event listed in its partition's due set
 * (`e:<event>:<otpId>:<n>`, otp.record.ts) by the same script that records the change: approve, lock, accept
 * (sent), delivery report (delivered, undelivered), give-up (failed). Expiry is listed by the sweep when an
 * OTP's `x:` entry comes due (expiry.script.ts). Whoever made the change then publishes the event: reads the OTP,
 * adds the event's job, removes the entry. If that process dies or loses Redis in between, the entry stays and the
 * workers' sweep publishes it after EVENT_GRACE_MS. So every accepted change gets its event queued at least once
 * (twice only when a process died between adding the job and removing the entry, and the job was already gone).
 * The job id is the `webhook-id`, fixed per OTP, event and attempt: a repeated add while the job exists is a
 * no-op, and every try of one event carries the same id, so a receiver deduplicates on it.
 *
 * The queue `otp-events` lives under the `{ev}` hash tag (one slot). A job holds the body as posted (built once,
 * so retries send the same bytes) and the API key name (whose endpoint and secrets apply, looked up when sent).
 */
export interface StatusEventJob {
  readonly webhookId: string;
  readonly keyName: string;
  /** The JSON body, exactly as posted. */
  readonly body: string;
}

export type StatusEventQueue = Queue<StatusEventJob, void, string>;

export const STATUS_EVENT_QUEUE = 'otp-events';

export const statusEventQueuePrefix = (ks: Keyspace): string => `${ks.prefix}:{ev}`;

/** The `webhook-id` (and job id) of event `name` of an OTP, about attempt n (0: not about an attempt). */
export const webhookIdOf = (otpId: string, name: StatusEventName, n: number): string => `evt_${otpId}_${name}_${n}`;

/**
 * Retries: BullMQ's, by the `webhook` backoff strategy the events worker defines (exponential with jitter);
 * the processor gives an event up once it is older than the configured maximum age. A failed job stays visible
 * in the dashboard; completed ones are kept an hour so a repeated publish stays a no-op meanwhile.
 */
export const STATUS_EVENT_JOB_OPTIONS: Readonly<JobsOptions> = Object.freeze({
  attempts: 1000,
  backoff: { type: 'webhook' },
  removeOnComplete: { age: 3600, count: 10_000 },
});

export function createStatusEventQueue(redis: RedisClient, ks: Keyspace): StatusEventQueue {
  const q = new Queue<StatusEventJob, void, string>(STATUS_EVENT_QUEUE, {
    connection: redis,
    prefix: statusEventQueuePrefix(ks),
    defaultJobOptions: STATUS_EVENT_JOB_OPTIONS,
    streams: { events: { maxLen: 1000 } },
    // a queue's start-up must not hang on BullMQ's one INFO (see send-jobs.ts)
    skipVersionCheck: true,
  });
  q.on('error', (err) => reportStoreError('queue', err));
  return q;
}

/** Publishes listed events: the OTP's processes right after a change, the sweep for what was left listed. */
export interface StatusEvents {
  /**
   * Publishes event `name` (of attempt n) of an OTP if it is listed: `queued`; `none` when it is not (events off
   * for this OTP, or already published); `gone` when the OTP record is gone (the entry is dropped).
   */
  publish(otpId: string, name: StatusEventName, n: number): Promise<'queued' | 'none' | 'gone'>;
  /** Publishes a due-set member `e:<event>:<otpId>:<n>` (the sweep). */
  publishMember(member: string): Promise<'queued' | 'none' | 'gone'>;
}

const SNAPSHOT = [
  OTP_FIELDS.key,
  OTP_FIELDS.phone,
  OTP_FIELDS.status,
  OTP_FIELDS.ds,
  OTP_FIELDS.provider,
  OTP_FIELDS.exp,
  OTP_FIELDS.created,
  OTP_FIELDS.meta,
] as const;

/** Parses `e:<event>:<otpId>:<n>`. */
export function parseEventMember(member: string): { otpId: string; name: StatusEventName; n: number } | null {
  const m = /^e:([a-z]+):(otp_[0-9a-f]{32}):(\d+)$/.exec(member);
  if (!m) return null;
  return { name: m[1] as StatusEventName, otpId: m[2]!, n: Number(m[3]) };
}

export function createStatusEvents(
  deps: { redis: RedisClient; ks: Keyspace; queue: StatusEventQueue },
  opts: { now?: () => number; onQueued?: (name: StatusEventName) => void } = {},
): StatusEvents {
  const { redis, ks, queue } = deps;
  const publish: StatusEvents['publish'] = async (otpId, name, n) => {
    const keys = otpKeys(ks, otpId);
    const member = `${DUE.event}${name}:${otpId}:${n}`;
    const attemptFields = n > 0 ? [`a${n}.${ATTEMPT_FIELDS.provider}`, `a${n}.${ATTEMPT_FIELDS.errorCode}`] : [];
    // Callers publish what a script said it listed, so the entry is almost always there: both read at once, in
    // one round trip.
    const [score, f] = await Promise.all([
      redis.zscore(keys.due, member),
      redis.hmget(keys.otp, ...SNAPSHOT, ...attemptFields),
    ]);
    if (score == null) return 'none';
    const [keyName, phone, status, ds, provider, exp, created, meta, attemptProvider, errorCode] = f;
    if (!keyName || !phone) {
      await redis.zrem(keys.due, member);
      return 'gone';
    }
    const now = opts.now?.() ?? Date.now();
    const expiresAt = Number(exp);
    const shownStatus = (status === 'pending' && now >= expiresAt ? 'expired' : status) as OtpStatus;
    const body: StatusEventBody = {
      type: `otp.${name}`,
      timestamp: new Date(now).toISOString(),
      data: {
        id: otpId,
        status: shownStatus,
        deliveryStatus: (ds || 'queued') as DeliveryStatus,
        provider: ((n > 0 ? attemptProvider : provider) || null) as ProviderId | null,
        phoneNumber: phone,
        metadata: decodeMetadata(meta),
        expiresAt: new Date(expiresAt).toISOString(),
        createdAt: new Date(Number(created)).toISOString(),
        attempt: n > 0 ? n : null,
        errorCode: (n > 0 && errorCode) || null,
      },
    };
    const webhookId = webhookIdOf(otpId, name, n);
    await queue.add(body.type, { webhookId, keyName, body: JSON.stringify(body) }, { jobId: webhookId });
    await redis.zrem(keys.due, member);
    opts.onQueued?.(name);
    return 'queued';
  };
  return {
    publish,
    async publishMember(member) {
      const parsed = parseEventMember(member);
      if (!parsed) return 'none';
      return publish(parsed.otpId, parsed.name, parsed.n);
    },
  };
}

/**
 * Publishes an event after the change was recorded, never failing the caller: on an error the event stays listed
 * and the sweep publishes it (see above).
 */
export async function publishQuietly(
  events: StatusEvents | undefined,
  otpId: string,
  name: StatusEventName,
  n: number,
  onError?: (err: unknown) => void,
): Promise<void> {
  if (!events) return;
  try {
    await events.publish(otpId, name, n);
  } catch (e) {
    onError?.(e);
  }
}
