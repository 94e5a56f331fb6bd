import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiProcess, startApiProcess } from './support/api-process.js';
import { API_KEYS, codeFromStore, frMobile, KEY_A } from './support/otp-harness.js';
import { ROOT } from './support/processes.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from './support/redis.js';

/**
 * Two API replicas whose clocks disagree by two hours. The OTP scripts take the time from the Redis node that
 * owns the OTP's slot (TIME), never from the process: expiry, cooldowns, lockouts and the send window mean the
 * same on every replica, so a replica with a wrong clock neither shortens nor stretches an OTP's life.
 * (What still reads the process clock: log timestamps, and the 500 ms deadline of one script call, measured
 * against the Redis clock too, see redis/clock.ts.)
 */
const HOUR = 3_600_000;
let store: IsolatedStore;
let ahead: ApiProcess;
let behind: ApiProcess;

beforeAll(async () => {
  store = await isolatedRedis();
  const skewed = (ms: number) => ({
    ...store.env,
    API_KEYS,
    OTP_TTL_SECONDS: '300',
    OTP_RESEND_COOLDOWN_SECONDS: '0',
    NODE_OPTIONS: `--import=${join(ROOT, 'test/support/skew-clock.mjs')}`,
    TEST_CLOCK_SKEW_MS: String(ms),
  });
  [ahead, behind] = await Promise.all([
    startApiProcess(skewed(HOUR), KEY_A.secret),
    startApiProcess(skewed(-HOUR), KEY_A.secret),
  ]);
});

afterAll(async () => {
  await Promise.all([ahead?.stop(), behind?.stop()]);
  await closeRedisClients(store?.redis);
});

describe('API replicas whose clocks differ', () => {
  it('give an OTP the same life whichever replica created, reads and verifies it', async () => {
    // the processes' clocks are really skewed: their own log lines carry their time
    const redisNow = async () => {
      const [s, us] = await store.redis.time();
      return Number(s) * 1000 + Math.floor(Number(us) / 1000);
    };
    const t0 = await redisNow();
    const sent = await ahead.request('POST', '/v1/otp/send', { body: { phoneNumber: frMobile(7001) } });
    expect(sent.status).toBe(202);
    const expiresAt = Date.parse(String(sent.body['expiresAt']));
    // 300 s from the Redis clock, not from the replica's (an hour ahead)
    expect(expiresAt - t0).toBeGreaterThanOrEqual(299_000);
    expect(expiresAt - t0).toBeLessThanOrEqual(305_000);

    const id = String(sent.body['id']);
    const read = await behind.request('GET', `/v1/otp/${id}`);
    expect(read.body).toMatchObject({ status: 'pending', expiresAt: sent.body['expiresAt'] });
    const code = String(await codeFromStore(store, id));
    const ok = await behind.request('POST', '/v1/otp/verify', { body: { id, code } });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body).toMatchObject({ status: 'approved' });

    // the processes' own clocks did differ: each logs its time
    const logTime = (p: ApiProcess) =>
      Math.max(
        ...p.proc
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => Number(JSON.parse(l).time ?? 0)),
      );
    expect(logTime(ahead) - logTime(behind)).toBeGreaterThan(HOUR);
  });
});
