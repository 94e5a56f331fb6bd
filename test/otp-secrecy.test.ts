import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Keyspace,
  otpKeys,
  type RedisClient,
  sendQueueName,
  sendQueuePrefix,
  shardOf,
} from '../packages/store/src/index.js';
import { type ApiProcess, type HttpAnswer, startApiProcess } from './support/api-process.js';
import { API_KEYS, codeFromStore, dumpRedis, findClear, KEY_A, KEY_B } from './support/otp-harness.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from './support/redis.js';

const PHONE = '+33612345670';
const CODE_LENGTH = 10; // long codes: a chance match of the code inside a timestamp or hash is out of reach

let store: IsolatedStore;
let db: RedisClient;
let ks: Keyspace;
let api: ApiProcess;
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
const answers: [string, HttpAnswer][] = [];

beforeAll(async () => {
  store = await isolatedRedis();
  db = store.redis;
  ks = store.ks;
  api = await startApiProcess(
    {
      ...store.env,
      API_KEYS,
      OTP_CODE_LENGTH: String(CODE_LENGTH),
      OTP_MAX_ATTEMPTS: '3',
      OTP_RESEND_COOLDOWN_SECONDS: '0',
      LOG_LEVEL: 'trace',
      METRICS_TOKEN: METRICS_TOKEN,
    },
    KEY_A.secret,
  );
});

afterAll(async () => {
  await api?.stop();
  await closeRedisClients(db);
});

async function call(what: string, ...args: Parameters<ApiProcess['request']>): Promise<HttpAnswer> {
  const res = await api.request(...args);
  answers.push([`answer to ${what}`, res]);
  return res;
}

describe('the code never appears in clear', () => {
  it('after send, wrong verify, right verify and status: not in Redis, not in any log line, not in any answer', async () => {
    const sent = await call('send', 'POST', '/v1/otp/send', {
      body: { phoneNumber: PHONE },
      headers: { 'idempotency-key': 'secrecy-flow' },
    });
    expect(sent.status).toBe(202);
    const id = String(sent.body['id']);
    const code = String(await codeFromStore(store, id));
    expect(code).toMatch(new RegExp(`^\\d{${CODE_LENGTH}}$`));
    const wrong = code.startsWith('9') ? `0${code.slice(1)}` : `9${code.slice(1)}`;

    await call('replayed send', 'POST', '/v1/otp/send', {
      body: { phoneNumber: PHONE },
      headers: { 'idempotency-key': 'secrecy-flow' },
    });
    await call('get', 'GET', `/v1/otp/${id}`);
    expect((await call('wrong verify', 'POST', '/v1/otp/verify', { body: { id, code: wrong } })).status).toBe(422);
    // The right code under another key, and in a malformed body: refused without echoing it.
    expect((await call('other key', 'POST', '/v1/otp/verify', { body: { id, code }, key: KEY_B.secret })).status).toBe(
      404,
    );
    expect(
      (await call('bad body', 'POST', '/v1/otp/verify', { body: { id, code, note: code, phoneNumber: code } })).status,
    ).toBe(400);
    expect((await call('bad code', 'POST', '/v1/otp/verify', { body: { id, code: `${code}123456` } })).status).toBe(
      400,
    );
    expect((await call('no key', 'POST', '/v1/otp/verify', { body: { id, code }, key: null })).status).toBe(401);
    const ok = await call('right verify', 'POST', '/v1/otp/verify', { body: { phoneNumber: PHONE, code } });
    expect(ok.status).toBe(200);
    expect((await call('verify again', 'POST', '/v1/otp/verify', { body: { id, code } })).status).toBe(409);
    const status = await call('status', 'GET', `/v1/otp/status?phoneNumber=${encodeURIComponent(PHONE)}`);
    expect(status.body).toMatchObject({ id, status: 'approved' });
    await call('metrics', 'GET', '/metrics', { key: null });
    await call('openapi', 'GET', '/openapi.json', { key: null });

    // Give the last log lines time to land.
    await new Promise((r) => setTimeout(r, 200));

    const dump = await dumpRedis(db, store.prefix);
    // The scan reaches every kind of value: the OTP record, its number's, BullMQ's job hash, lists and streams.
    const shards = Number(store.env.SEND_QUEUE_SHARDS ?? 1);
    const shard = shardOf(id, shards);
    const jobKey = `${sendQueuePrefix(ks, shard, shards)}:${sendQueueName(shard)}:${id}`;
    expect(dump.map((k) => k.key)).toEqual(
      expect.arrayContaining([jobKey, otpKeys(ks, id).otp, otpKeys(ks, id).number]),
    );
    expect([...new Set(dump.map((k) => k.type))]).toEqual(expect.arrayContaining(['string', 'hash', 'list', 'stream']));
    const logs = api.proc.output().split('\n');
    expect(logs.filter((l) => l.includes(id)).length).toBeGreaterThan(0);

    const places: [string, string][] = [
      ...dump.map((k): [string, string] => [`redis ${k.type} ${k.key}`, `${k.key}\n${k.values.join('\n')}`]),
      ...logs.map((l, i): [string, string] => [`log line ${i}`, l]),
      ...answers.map(([what, a]): [string, string] => [what, `${JSON.stringify([...a.headers])}\n${a.text}`]),
    ];
    expect(findClear(code, places)).toEqual([]);
    // The check itself finds a code where there is one.
    expect(findClear(code, [['probe', `x${code}x`]])).toHaveLength(1);
  });
});

describe('phone numbers in log lines', () => {
  it('are masked, even when a query string repeats phoneNumber=', async () => {
    const first = '+33612345671';
    const second = '+33612345672';
    await api.request('GET', `/v1/otp/status?phoneNumber=${encodeURIComponent(first)}`);
    await api.request('POST', '/v1/otp/send', { body: { phoneNumber: first } });
    await api.request(
      'GET',
      `/v1/otp/status?phoneNumber=${encodeURIComponent(first)}&phoneNumber=${encodeURIComponent(second)}`,
    );
    // the last request's line has come through (both numbers, masked): the scan below reads what was logged
    await api.proc.waitForLog((l) =>
      String((l['req'] as { url?: string } | undefined)?.url).endsWith(
        'phoneNumber=+336*****671&phoneNumber=+336*****672',
      ),
    );
    const leaks = api.proc
      .output()
      .split('\n')
      .filter((l) => l.includes('12345671') || l.includes('12345672'));
    expect(leaks).toEqual([]);
  });
});

describe('query strings in log lines', () => {
  it('regression: a key or a code put in a query string is never logged, only the parameter names', async () => {
    const secret = 'leaky-api-key-in-query-0123456789';
    await api.request('GET', `/v1/otp/status?phoneNumber=%2B33612345673&api_key=${secret}&code=987654`);
    await api.request('GET', `/v1/otp/otp_${'0'.repeat(32)}?token=${secret}`);
    await api.request('GET', `/healthz?k=${secret}`);
    await new Promise((r) => setTimeout(r, 200));
    const lines = api.proc.output().split('\n');
    expect(lines.filter((l) => l.includes(secret) || l.includes('987654') || l.includes('12345673'))).toEqual([]);
    // the request was logged, with the names of its parameters
    expect(lines.some((l) => l.includes('api_key=***') && l.includes('code=***'))).toBe(true);
  });
});

describe('/metrics with METRICS_TOKEN', () => {
  it('regression: answers 401 without the token (or with an API key), and the metrics with it', async () => {
    expect((await api.request('GET', '/metrics', { key: null })).status).toBe(401);
    expect((await api.request('GET', '/metrics')).status).toBe(401);
    const ok = await api.request('GET', '/metrics', { key: METRICS_TOKEN });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('otp_api_refusals_total');
  });
});
