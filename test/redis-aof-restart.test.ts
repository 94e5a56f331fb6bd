import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './support/processes.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from './support/redis.js';
import { type LocalRedis, startLocalRedis } from './support/redis-server.js';
import { codeIn, type Stack, startStack } from './support/stack.js';

// The durability the README asks for with one Redis: AOF on, fsync every second. A SIGKILL of redis-server (the
// machine stays up) loses nothing it answered, because Redis writes the AOF before it replies; so every OTP the
// API answered 202 for must survive a kill in the middle of a burst and a restart from the same directory, and
// go out once, with one code that verifies. Sends answered 503 while Redis is down were never accepted.
const AOF = ['--appendonly', 'yes', '--appendfsync', 'everysec'];
let dir: string;
let redis: LocalRedis;
let store: IsolatedStore;
let stack: Stack;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'otp-aof-'));
  redis = await startLocalRedis({ dir, args: AOF });
  store = await isolatedRedis({ REDIS_URL: redis.url });
  stack = await startStack({ store, env: { SIM_TWILIO_LATENCY_MS: '50' } });
});
afterAll(async () => {
  await stack?.stop();
  await closeRedisClients(store?.redis);
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const phone = (i: number) => `+3367${String(40_000 + i).padStart(7, '0')}`;

describe('a Redis with AOF (everysec) killed during a burst', () => {
  it('loses no accepted OTP: each goes out once, with one code that verifies', async () => {
    const accepted: { id: string; to: string }[] = [];
    let refused = 0;
    let acceptedAfterRestart = 0;
    let next = 0;
    let killed: Promise<void> | undefined;
    let restarted = false;

    // Six clients send in a loop. Once 25 OTPs are accepted Redis is killed, and started again from its files
    // 1.5 s later on the same port; the clients keep sending through the outage and until 20 more are accepted
    // (at most 400 sends in all).
    const client = async () => {
      while (next < 400 && acceptedAfterRestart < 20) {
        const to = phone(next++);
        const res = await stack.send(to).catch(() => ({ status: 0, body: {} }));
        if (res.status === 202) {
          accepted.push({ id: res.body.id, to });
          if (restarted) acceptedAfterRestart++;
        } else refused++;
        if (!killed && accepted.length >= 25) {
          killed = (async () => {
            await redis.stop(); // SIGKILL
            await new Promise((r) => setTimeout(r, 1500));
            redis = await startLocalRedis({ port: redis.port, dir, args: AOF });
            restarted = true;
          })();
        }
        // no busy loop while it is down, nor while the API reconnects (its backoff reaches 2 s)
        if (killed && res.status !== 202) await new Promise((r) => setTimeout(r, 100));
      }
    };
    await Promise.all(Array.from({ length: 6 }, client));
    await killed;
    // The kill landed mid-burst: sends were refused while Redis was down, and accepted again once it was back.
    expect(refused, 'sends refused while Redis was down').toBeGreaterThan(0);
    expect(acceptedAfterRestart, 'sends accepted after the restart').toBeGreaterThan(0);

    const otps = await eventually(
      async () => {
        const all = await Promise.all(accepted.map((a) => stack.otp(a.id)));
        const waiting = all.filter((o) => o.deliveryStatus !== 'sent' && o.deliveryStatus !== 'delivered');
        if (waiting.length === 0) return all;
        throw new Error(`${waiting.length} not sent yet, e.g. ${JSON.stringify(waiting.slice(0, 2))}`);
      },
      45_000,
      'every accepted OTP sent',
    );
    for (const [i, otp] of otps.entries()) {
      const { id, to } = accepted[i]!;
      const inbox = await stack.inbox(to);
      const sent = otp.attempts.filter((a: any) => a.outcome === 'accepted' || a.outcome === 'delivered');
      expect(sent, `${id} attempts`).toHaveLength(1);
      // An attempt in flight when Redis died is recorded `interrupted` and resumed: it may have gone out twice.
      const couldSend = otp.attempts.filter((a: any) => a.outcome === 'interrupted').length + sent.length;
      expect(inbox.length, `${to} inbox`).toBeGreaterThanOrEqual(1);
      expect(inbox.length, `${to} inbox`).toBeLessThanOrEqual(couldSend);
      const codes = new Set(inbox.map((m) => codeIn(m.body)));
      expect(codes.size, `${to} codes`).toBe(1);
      expect((await stack.verify({ id, code: [...codes][0]! })).status, `${id} verifies`).toBe(200);
    }
  }, 120_000);
});
