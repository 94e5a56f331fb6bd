import { createHash } from 'node:crypto';
import { buildApi } from '../../apps/api/src/app.js';
import { type Config, decryptCode, deriveKeys, loadConfig, type OtpKeys } from '../../packages/core/src/index.js';
import { createOtpService } from '../../packages/service/src/index.js';
import {
  connectStore,
  createIdempotencyStore,
  createOtpRepo,
  createRequestLimiter,
  createSendQueues,
  numberRules,
  type RedisClient,
  readSealedCode,
  requestLimits,
  type SendQueues,
  waitReady,
} from '../../packages/store/src/index.js';
import { TEST_SECRET } from './processes.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis, keysUnder } from './redis.js';

/** Two API keys: OTPs created under one must be invisible under the other. */
export const KEY_A = { name: 'alpha', secret: 'alpha-secret-0123456789abcdef' } as const;
export const KEY_B = { name: 'beta', secret: 'beta-secret-0123456789abcdefgh' } as const;
export const API_KEYS = `${KEY_A.name}:${KEY_A.secret},${KEY_B.name}:${KEY_B.secret}`;

/** A valid French mobile number, distinct for each `i`. */
export const frMobile = (i: number) => `+3361${String(i).padStart(7, '0')}`;

export interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly headers: Record<string, string | string[] | number | undefined>;
  readonly text: string;
}

export interface CallOptions {
  /** The API key secret to send as Bearer; null sends no Authorization header. */
  key?: string | null;
  body?: unknown;
  /** Sent as is (for bad JSON); overrides `body`. */
  raw?: string;
  headers?: Record<string, string>;
  ip?: string;
}

/** The API built in-process on a real Redis and real BullMQ queues, wired as apps/api/src/main.ts does. */
export interface TestApi {
  readonly config: Config;
  readonly keys: OtpKeys;
  /** This API's share of Redis (its key prefix), and an admin client on it, for inspecting and comparing state. */
  readonly store: IsolatedStore;
  readonly db: RedisClient;
  readonly queues: SendQueues;
  /** Milliseconds added to the real time the OTP scripts see; starts 1 s into a fresh minute. */
  offsetMs: number;
  now(): number;
  call(method: 'GET' | 'POST', url: string, opts?: CallOptions): Promise<Answer>;
  send(phoneNumber: string, opts?: CallOptions): Promise<Answer>;
  verify(body: Record<string, unknown>, opts?: CallOptions): Promise<Answer>;
  /** The code of an OTP, learned the only way a test can: decrypting the sealed code the workers send. */
  codeOf(otpId: string): Promise<string>;
  /** Every key of this API's prefix. */
  keys_(): Promise<string[]>;
  /** Jobs in every state over every send queue shard. */
  jobTotal(): Promise<number>;
  /** The first send job of an OTP, if queued. */
  job(otpId: string): Promise<import('bullmq').Job | undefined>;
  close(): Promise<void>;
}

/**
 * Builds the API in-process with `env` on top of a test default (two keys, the test secret). Pass `shared` to share
 * a store with another instance (two API replicas); otherwise a fresh isolated prefix is taken.
 */
export async function startTestApi(env: Record<string, string> = {}, shared?: IsolatedStore): Promise<TestApi> {
  const store = shared ?? (await isolatedRedis());
  const config = loadConfig(
    { NODE_ENV: 'test', ...store.env, OTP_SECRET: TEST_SECRET, API_KEYS, LOG_LEVEL: 'silent', ...env },
    'api',
  );
  const keys = deriveKeys(config.otpSecret);
  const { redis, ks } = connectStore(config, 'request', 'otp-api-test');
  const queues = createSendQueues(redis, ks, config.queues);
  const repo = createOtpRepo(redis, ks, {
    rules: numberRules(config.otp),
    retentionMs: config.otp.recordRetentionSeconds * 1000,
  });
  const nextMinute = Math.ceil(Date.now() / 60_000) * 60_000;
  const api: TestApi = {
    config,
    keys,
    store,
    db: store.redis,
    queues,
    offsetMs: nextMinute + 1000 - Date.now(),
    now: () => Date.now() + api.offsetMs,
    call: async () => {
      throw new Error('not ready');
    },
    send: (phoneNumber, opts = {}) => api.call('POST', '/v1/otp/send', { body: { phoneNumber }, ...opts }),
    verify: (body, opts = {}) => api.call('POST', '/v1/otp/verify', { body, ...opts }),
    async codeOf(otpId) {
      const sealed = await readSealedCode(store.redis, ks, otpId);
      if (!sealed) throw new Error(`no sealed code for ${otpId}`);
      return decryptCode(keys, otpId, sealed);
    },
    keys_: () => keysUnder(store.redis, store.prefix),
    async jobTotal() {
      const counts = await Promise.all(queues.shards.map((q) => q.getJobCounts()));
      return counts.flatMap((c) => Object.values(c)).reduce((sum, n) => sum + n, 0);
    },
    job: (otpId) => queues.forOtp(otpId).getJob(otpId),
    async close() {
      await app.close();
      await queues.close();
      await closeRedisClients(redis, shared ? undefined : store.redis);
    },
  };
  const service = createOtpService({
    config,
    keys,
    repo,
    limiter: createRequestLimiter(redis, ks, requestLimits(config.otp)),
    idempotency: createIdempotencyStore(redis, ks),
    queues,
    now: () => api.now(),
  });
  const app = await buildApi({ config, service, connections: [redis], logger: false });
  api.call = async (method, url, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    const key = opts.key === undefined ? KEY_A.secret : opts.key;
    if (key !== null) headers['authorization'] = `Bearer ${key}`;
    let payload: string | undefined;
    if (opts.raw !== undefined) payload = opts.raw;
    else if (opts.body !== undefined) payload = JSON.stringify(opts.body);
    if (payload !== undefined) headers['content-type'] ??= 'application/json';
    const res = await app.inject({ method, url, headers, payload, remoteAddress: opts.ip ?? '127.0.0.1' });
    let body: Record<string, unknown> = {};
    try {
      body = res.json();
    } catch {}
    return { status: res.statusCode, body, headers: res.headers, text: res.body };
  };
  await waitReady(redis, 10_000);
  await Promise.all(queues.shards.map((q) => q.waitUntilReady()));
  // BullMQ writes each queue's meta hash once its connection is ready, after waitUntilReady resolves: wait for it,
  // so that a test's "nothing is stored" snapshots do not catch a shard's meta arriving in between
  for (const q of queues.shards) {
    for (let i = 0; (await q.getVersion()) === null; i++) {
      if (i >= 200) throw new Error(`${q.name}: BullMQ never wrote its meta`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  return api;
}

/** One Redis key with its type and every value it holds, flattened to strings. */
export interface DumpedKey {
  readonly key: string;
  readonly type: string;
  readonly values: readonly string[];
  /** When the key expires, epoch ms (PEXPIRETIME: it does not move as time passes); -1 without a TTL. */
  readonly expiresAt: number;
}

/** Reads every key under a prefix (all masters), whatever its type: strings, hashes, lists, sets, zsets, streams. */
export async function dumpRedis(redis: RedisClient, prefix: string): Promise<DumpedKey[]> {
  const names = await keysUnder(redis, prefix);
  const out: DumpedKey[] = [];
  for (const key of names) {
    const type = await redis.type(key);
    let values: string[] = [];
    if (type === 'string') values = [(await redis.get(key)) ?? ''];
    else if (type === 'hash') values = Object.entries(await redis.hgetall(key)).flat();
    else if (type === 'list') values = await redis.lrange(key, 0, -1);
    else if (type === 'set') values = (await redis.smembers(key)).sort();
    else if (type === 'zset') values = await redis.zrange(key, 0, -1, 'WITHSCORES');
    else if (type === 'stream') {
      const entries = (await redis.xrange(key, '-', '+')) as [string, string[]][];
      values = entries.flatMap(([id, fields]) => [id, ...fields]);
    } else if (type === 'none') continue;
    else throw new Error(`dumpRedis: unhandled type ${type} for ${key}`);
    const expiresAt = Number(await redis.call('PEXPIRETIME', key));
    if (expiresAt === -2) continue; // gone meanwhile
    out.push({ key, type, values, expiresAt });
  }
  return out;
}

/**
 * Everything under a prefix as one comparable string, expiry times included: equal snapshots mean nothing changed
 * (a request that only refreshed a key's TTL changed something).
 */
export async function snapshot(redis: RedisClient, prefix: string): Promise<string> {
  return JSON.stringify(await dumpRedis(redis, prefix));
}

/** The forms in which a code counts as "in clear": itself, and unkeyed digests or encodings anyone can reverse. */
export function clearForms(code: string): string[] {
  const digest = (alg: string) => createHash(alg).update(code).digest('hex');
  return [
    code,
    Buffer.from(code).toString('base64').replace(/=+$/, ''),
    Buffer.from(code).toString('hex'),
    digest('md5'),
    digest('sha1'),
    digest('sha256'),
  ];
}

/** Where any clear form of `code` shows up in `texts` (empty when nowhere). */
export function findClear(code: string, texts: Iterable<[where: string, text: string]>): string[] {
  const forms = clearForms(code);
  const hits: string[] = [];
  for (const [where, text] of texts) {
    for (const f of forms) if (text.toLowerCase().includes(f.toLowerCase())) hits.push(`${where} holds ${f}`);
  }
  return hits;
}

/** The key of an OTP's first send job, as BullMQ spells it. */
export function sendJobKey(api: Pick<TestApi, 'queues'>, otpId: string): string {
  const q = api.queues.forOtp(otpId);
  return `${q.opts.prefix}:${q.name}:${otpId}`;
}

/**
 * The code of an OTP, learned the only way a test can: decrypting the sealed code the workers send, from the
 * OTP's record (null once the OTP ended: its sealed code is gone).
 */
export async function codeFromStore(store: IsolatedStore, otpId: string, secret = TEST_SECRET): Promise<string | null> {
  const sealed = await readSealedCode(store.redis, store.ks, otpId);
  return sealed ? decryptCode(deriveKeys(secret), otpId, sealed) : null;
}
