import {
  deriveKeys,
  encryptCode,
  hashCode,
  newOtpId,
  numberToken,
  type ProviderId,
} from '../../packages/core/src/index.js';
import {
  createCircuits,
  createDeliveryRepo,
  createMessageIndex,
  createOtpRepo,
  createSendQueues,
  type DeliveryRepo,
  otpKeys,
  type SendQueues,
} from '../../packages/store/src/index.js';
import { TEST_SECRET } from './processes.js';
import type { IsolatedStore } from './redis.js';

/**
 * OTPs laid out in Redis by the store's own scripts (create, begin, accept), the way the API and a worker leave
 * them, for tests of what comes after (callbacks, receipts, the sweep). Nothing here spells a key or a field.
 */
export interface OtpFixtures {
  readonly delivery: DeliveryRepo;
  readonly queues: SendQueues;
  /** A pending OTP never sent (its job not queued). */
  created(opts?: {
    phoneNumber?: string;
    ttlMs?: number;
    now?: number;
    /** The code length recorded on the OTP (its code is 123456 whatever it says). */
    codeLength?: number;
  }): Promise<{ id: string; exp: number }>;
  /**
   * A pending OTP whose attempt 1 went out through `provider` as `messageId`. `named`: its reports name the attempt
   * (Twilio's StatusCallback does), so the message is not indexed.
   */
  accepted(
    provider: ProviderId,
    messageId: string,
    opts?: { phoneNumber?: string; ttlMs?: number; receiptAfterMs?: number; named?: boolean },
  ): Promise<{ id: string; exp: number }>;
  /** A pending OTP whose attempt 1 is being sent through `provider` (started, its message not recorded yet). */
  sending(provider: ProviderId, opts?: { phoneNumber?: string }): Promise<{ id: string; exp: number }>;
  /** The OTP's hash as stored. */
  record(id: string): Promise<Record<string, string>>;
  /** Checks the OTP's right code, as its user would: it ends approved. */
  approve(id: string): Promise<void>;
  close(): Promise<void>;
}

let counter = 0;
/** A distinct valid French mobile number per call. */
export const nextPhone = () =>
  `+3375${String(process.pid % 1000).padStart(3, '0')}${String(++counter).padStart(4, '0')}`;

/**
 * `now` (tests that move time): the clock of every script the fixtures run, as the repos under test get it;
 * absent, the Redis node's TIME.
 */
export function otpFixtures(
  store: IsolatedStore,
  opts: { keyName?: string; receiptAfterMs?: number; now?: () => number } = {},
): OtpFixtures {
  const keys = deriveKeys(TEST_SECRET);
  const keyName = opts.keyName ?? 'k';
  const { redis, ks } = store;
  const repo = createOtpRepo(redis, ks, {
    rules: { maxFailures: 100, lockMs: 60_000, cooldownMs: 0, maxSends: 1000, windowMs: 3_600_000 },
    retentionMs: 600_000,
  });
  // trustMs 0: the fixtures' sends pick each time and write no circuit state a test did not ask for
  const circuits = createCircuits(redis, ks, {
    failureThreshold: 1000,
    cooldownMs: 1000,
    ratePerSecond: {},
    trustMs: 0,
  });
  const messages = createMessageIndex(redis, ks);
  const deliveryWith = (receiptAfterMs: number) =>
    createDeliveryRepo(
      { redis, ks, circuits, messages, now: opts.now },
      { leaseMs: 5000, receiptAfterMs, messageTtlMs: 600_000 },
    );
  const delivery = deliveryWith(opts.receiptAfterMs ?? 0);
  const queues = createSendQueues(redis, ks, {
    sendShards: Number(store.env.SEND_QUEUE_SHARDS ?? 1),
    keepCompleted: 100,
    keepFailedSeconds: 3600,
  });

  const created: OtpFixtures['created'] = async (o = {}) => {
    const phoneNumber = o.phoneNumber ?? nextPhone();
    const id = newOtpId(numberToken(keys, keyName, phoneNumber));
    const r = await repo.create(
      {
        id,
        keyName,
        phoneNumber,
        codeHash: hashCode(keys, id, '123456'),
        sealedCode: encryptCode(keys, id, '123456'),
        ttlMs: o.ttlMs ?? 300_000,
        maxAttempts: 5,
        callingCode: '33',
        country: 'FR',
        locale: 'fr',
        ...(o.codeLength ? { codeLength: o.codeLength } : {}),
      },
      o.now ?? opts.now?.(),
    );
    if (r.kind !== 'created') throw new Error(`fixture OTP not created: ${JSON.stringify(r)}`);
    return { id, exp: r.expiresAt };
  };

  return {
    delivery,
    queues,
    created,
    async accepted(provider, messageId, o = {}) {
      const otp = await created(o);
      const d = o.receiptAfterMs === undefined ? delivery : deliveryWith(o.receiptAfterMs);
      const begun = await d.begin(otp.id, [provider], 5000);
      if (begun.kind !== 'go') throw new Error(`fixture OTP not begun: ${JSON.stringify(begun)}`);
      await d.accepted(otp.id, begun.attempt, provider, {
        messageId,
        providerStatus: 'queued',
        hadFailures: false,
        ...(o.named ? { reportsNameAttempt: true } : {}),
      });
      return otp;
    },
    async sending(provider, o = {}) {
      const otp = await created(o);
      const begun = await delivery.begin(otp.id, [provider], 5000);
      if (begun.kind !== 'go') throw new Error(`fixture OTP not begun: ${JSON.stringify(begun)}`);
      return otp;
    },
    record: (id) => redis.hgetall(otpKeys(ks, id).otp),
    async approve(id) {
      const r = await repo.verify({ by: 'id', id }, keyName, (otpId) => hashCode(keys, otpId, '123456'), opts.now?.());
      if (r.kind !== 'approved') throw new Error(`fixture OTP not approved: ${JSON.stringify(r)}`);
    },
    close: () => queues.close(),
  };
}
