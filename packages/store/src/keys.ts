/**
 * The Redis key layout: the only place that spells keys. Everything lives under `otp:`.
 * The scripts also build `otp:o:{id}` from an id they read, so the layout is not Redis Cluster-safe
 * (one Redis, or a primary with replicas, as BullMQ itself prefers).
 */
export const PREFIX = 'otp:';

export const keys = {
  /** HASH: one OTP (see otp.repo.ts for fields). */
  otp: (id: string) => `${PREFIX}o:${id}`,
  /** STRING: id of the newest OTP for this API key and number. */
  latest: (keyName: string, phone: string) => `${PREFIX}l:${keyName}:${phone}`,
  /** STRING counter: consecutive wrong codes for this number under this key; reset on success. */
  numberFailures: (keyName: string, phone: string) => `${PREFIX}nf:${keyName}:${phone}`,
  /** STRING marker: a send to this number happened within the cooldown. */
  cooldown: (keyName: string, phone: string) => `${PREFIX}cd:${keyName}:${phone}`,
  /** STRING counter: sends to this number in the current window. */
  sendWindow: (keyName: string, phone: string) => `${PREFIX}sw:${keyName}:${phone}`,
  /** STRING counter: requests by this API key in the current minute. */
  keyRate: (keyName: string, minute: number) => `${PREFIX}rk:${keyName}:${minute}`,
  /** STRING counter: requests from this client IP in the current minute. */
  ipRate: (ip: string, minute: number) => `${PREFIX}ri:${ip}:${minute}`,
  /** HASH {fp, resp}: the first answer to an Idempotency-Key under an API key. */
  idempotency: (keyName: string, idemKey: string) => `${PREFIX}i:${keyName}:${idemKey}`,
  /** STRING `{otpId}:{attemptNo}`: which OTP attempt a provider message id belongs to. */
  message: (provider: string, messageId: string) => `${PREFIX}m:${provider}:${messageId}`,
  /** LIST: delivery callbacks that arrived before their message id was recorded. */
  earlyCallbacks: (provider: string, messageId: string) => `${PREFIX}cb:${provider}:${messageId}`,
  /** ZSET of OTP ids (score: creation ms) whose send job has not started yet; swept for jobs that were lost. */
  unstarted: () => `${PREFIX}unstarted`,
  /** HASH: a provider's circuit breaker state, shared by all workers. */
  circuit: (provider: string) => `${PREFIX}cir:${provider}`,
} as const;

/** How long an OTP's record stays readable after it expires, for status polling and audits. */
export const RETENTION_MS = 24 * 3600 * 1000;
/**
 * An OTP is resent through another provider (after a non-delivery, a missing receipt, or a lost resend job)
 * only when it has more life left than this: one rule for the callbacks app, the receipt check and the sweep.
 */
export const MIN_RESEND_LIFE_MS = 15_000;
/** How long an Idempotency-Key answer is kept. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
