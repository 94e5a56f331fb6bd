import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { buildApi } from '../../apps/api/src/app.js';
import {
  type Config,
  decryptCode,
  deriveKeys,
  loadConfig,
  type OtpKeys,
  QUEUES,
  type SendJobData,
} from '../../packages/core/src/index.js';
import {
  createOtpRepo,
  createOtpService,
  createRedis,
  createSendQueue,
  limitsFromConfig,
  type SendQueue,
} from '../../packages/store/src/index.js';
import { TEST_SECRET } from './processes.js';
import { closeRedisClients, isolatedRedis } from './redis.js';

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

/** The API built in-process on a real Redis and a real BullMQ queue, wired as apps/api/src/main.ts does. */
export interface TestApi {
  readonly config: Config;
  readonly keys: OtpKeys;
  readonly url: string;
  /** An admin client on the same database, for inspecting and comparing state. */
  readonly db: Redis;
  readonly queue: SendQueue;
  /** Milliseconds added to the real time the OTP service sees; starts 1 s into a fresh minute. */
  offsetMs: number;
  now(): number;
  call(method: 'GET' | 'POST', url: string, opts?: CallOptions): Promise<Answer>;
  send(phoneNumber: string, opts?: CallOptions): Promise<Answer>;
  verify(body: Record<string, unknown>, opts?: CallOptions): Promise<Answer>;
  /** The code of an OTP, learned the only way a test can: decrypting its send job's sealedCode. */
  codeOf(otpId: string): Promise<string>;
  close(): Promise<void>;
}

/** Waits until an ioredis client is connected (request connections refuse commands before). */
export async function waitReady(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
}

/**
 * Builds the API in-process with `env` on top of a test default (two keys, the test secret). Pass `db` to share
 * a database with another instance (two API replicas); otherwise a fresh isolated database is taken.
 */
export async function startTestApi(
  env: Record<string, string> = {},
  shared?: { url: string; db: Redis },
): Promise<TestApi> {
  let own: { url: string; db: Redis };
  if (shared) own = shared;
  else {
    const isolated = await isolatedRedis();
    own = { url: isolated.url, db: isolated.redis };
  }
  const config = loadConfig(
    { NODE_ENV: 'test', REDIS_URL: own.url, OTP_SECRET: TEST_SECRET, API_KEYS, LOG_LEVEL: 'silent', ...env },
    'api',
  );
  const keys = deriveKeys(config.otpSecret);
  const redis = createRedis(config.redisUrl, 'request', 'otp-api-test');
  const queue = createSendQueue(redis);
  queue.on('error', () => {});
  const repo = createOtpRepo(redis, limitsFromConfig(config.otp));
  const nextMinute = Math.ceil(Date.now() / 60_000) * 60_000;
  const api: TestApi = {
    config,
    keys,
    url: own.url,
    db: own.db,
    queue,
    offsetMs: nextMinute + 1000 - Date.now(),
    now: () => Date.now() + api.offsetMs,
    call: async () => {
      throw new Error('not ready');
    },
    send: (phoneNumber, opts = {}) => api.call('POST', '/v1/otp/send', { body: { phoneNumber }, ...opts }),
    verify: (body, opts = {}) => api.call('POST', '/v1/otp/verify', { body, ...opts }),
    async codeOf(otpId) {
      const job = await queue.getJob(otpId);
      if (!job) throw new Error(`no send job ${otpId}`);
      return decryptCode(keys, otpId, (job.data as SendJobData).sealedCode);
    },
    async close() {
      await app.close();
      await queue.close().catch(() => {});
      await closeRedisClients(redis, shared ? undefined : own.db);
    },
  };
  const service = createOtpService({ config, keys, repo, queue, now: () => api.now() });
  const app = await buildApi({ config, service, redis, logger: false });
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
  await waitReady(redis);
  await queue.waitUntilReady();
  return api;
}

/** One Redis key with its type and every value it holds, flattened to strings. */
export interface DumpedKey {
  readonly key: string;
  readonly type: string;
  readonly values: readonly string[];
}

/** Reads every key of the client's database (SCAN), whatever its type: strings, hashes, lists, sets, zsets, streams. */
export async function dumpRedis(redis: Redis): Promise<DumpedKey[]> {
  const names = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'COUNT', 1000);
    for (const k of batch) names.add(k);
    cursor = next;
  } while (cursor !== '0');
  const out: DumpedKey[] = [];
  for (const key of [...names].sort()) {
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
    out.push({ key, type, values });
  }
  return out;
}

/** The whole database as one comparable string (no TTLs): equal snapshots mean nothing changed. */
export async function snapshot(redis: Redis): Promise<string> {
  return JSON.stringify(await dumpRedis(redis));
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

/** The send queue's name as BullMQ spells its keys. */
export const SEND_QUEUE_PREFIX = `bull:${QUEUES.send}:`;
