import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from './support/processes.js';
import { isolatedRedis } from './support/redis.js';
import { type LocalCluster, startLocalCluster } from './support/redis-cluster.js';
import { type LocalSentinel, startLocalSentinel } from './support/redis-sentinel.js';
import { codeIn, type Stack, startStack } from './support/stack.js';

// The whole gateway (simulator, API, two workers) on a Redis that fails over in the middle of a burst of sends:
// a Redis Cluster with a replica per master (CLUSTER FAILOVER), and a primary and replica behind three sentinels
// (SENTINEL FAILOVER). What a backend must see: every send answered 202 gets its SMS, one code per number, and
// that code verifies; refusals during the switch are 503s (which it retries), not lost OTPs.

const owned: { stop(): Promise<unknown> }[] = [];
afterAll(async () => {
  for (const o of owned.reverse()) await o.stop().catch(() => {});
});

let n = 0;
const nextPhone = (base: number) => `+3361${String(base).padStart(3, '0')}${String(++n).padStart(4, '0')}`;

interface Burst {
  readonly accepted: { id: string; phone: string }[];
  /** Times (ms) of the 503 answers. */
  readonly unavailable: number[];
}

/** Sends `count` OTPs to distinct numbers, `perTick` every 50 ms, running `midway` once half are out. */
async function burst(stack: Stack, base: number, count: number, midway: () => Promise<void>): Promise<Burst> {
  const accepted: Burst['accepted'] = [];
  const unavailable: number[] = [];
  const pending: Promise<void>[] = [];
  let switched: Promise<void> | null = null;
  for (let i = 0; i < count; i++) {
    const phone = nextPhone(base);
    pending.push(
      stack.send(phone).then((r) => {
        if (r.status === 202) accepted.push({ id: r.body.id, phone });
        else if (r.status === 503) unavailable.push(Date.now());
        else throw new Error(`send ${phone}: ${r.status} ${JSON.stringify(r.body)}`);
      }),
    );
    if (i === Math.floor(count / 2)) switched = midway();
    await new Promise((r) => setTimeout(r, 50));
  }
  await Promise.all(pending);
  await switched;
  return { accepted, unavailable };
}

/** Every accepted OTP got its SMS, exactly one code per number, and that code verifies. */
async function expectNothingLost(stack: Stack, accepted: Burst['accepted']) {
  expect(accepted.length).toBeGreaterThan(0);
  for (const { id, phone } of accepted) {
    const inbox = await eventually(
      async () => {
        const m = await stack.inbox(phone);
        return m.length > 0 ? m : undefined;
      },
      30_000,
      `the SMS of ${id}`,
    );
    const codes = new Set(inbox.map((m) => codeIn(m.body)));
    expect(codes.size, `${phone} got ${codes.size} codes`).toBe(1);
    const verified = await stack.verify({ id, code: [...codes][0] as string });
    expect(verified.status, `${id}: ${JSON.stringify(verified.body)}`).toBe(200);
  }
}

describe('Redis Cluster failover during a burst of sends', () => {
  it('CLUSTER FAILOVER on a replica loses no accepted OTP and gives no number two codes', async () => {
    const cluster: LocalCluster = await startLocalCluster({ masters: 3, replicasPerMaster: 1 });
    owned.push(cluster);
    const store = await isolatedRedis({ REDIS_CLUSTER_NODES: cluster.nodesEnv, SEND_QUEUE_SHARDS: '3' });
    owned.push({ stop: () => store.redis.quit() });
    const stack = await startStack({ store, workers: 2, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    owned.push(stack);

    const replica = cluster.replicas[0];
    if (!replica) throw new Error('the cluster has no replica');
    const { accepted, unavailable } = await burst(stack, 100, 60, () => cluster.failover(replica.port));
    expect(cluster.nodes.map((m) => m.port)).toContain(replica.port);
    expect(accepted.length + unavailable.length).toBe(60);
    await expectNothingLost(stack, accepted);
  }, 90_000);
});

describe('Sentinel failover during a burst of sends', () => {
  it('SENTINEL FAILOVER loses no accepted OTP, gives no number two codes, and 503s only briefly', async () => {
    const sentinel: LocalSentinel = await startLocalSentinel();
    owned.push(sentinel);
    const store = await isolatedRedis({ REDIS_SENTINELS: sentinel.sentinelsEnv, REDIS_SENTINEL_NAME: sentinel.name });
    owned.push({ stop: () => store.redis.quit() });
    const stack = await startStack({ store, workers: 2, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    owned.push(stack);

    const before = await sentinel.primaryPort();
    const { accepted, unavailable } = await burst(stack, 200, 80, () => sentinel.failover());
    expect(await sentinel.primaryPort()).not.toBe(before);
    expect(accepted.length + unavailable.length).toBe(80);
    // Refusals only around the switch: the API follows the new primary within seconds.
    if (unavailable.length > 0) {
      expect(Math.max(...unavailable) - Math.min(...unavailable)).toBeLessThan(10_000);
    }
    await expectNothingLost(stack, accepted);
    // And it goes on serving on the new primary.
    const after = await stack.send(nextPhone(299));
    expect(after.status).toBe(202);
  }, 120_000);
});
