import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../../../test/support/redis-cluster.js';
import { checkRedisConfig, RedisConfigError } from './check.js';
import { createRedis, type RedisClient, redisAnswers, waitReady } from './connection.js';

// What a process checks of a Redis Cluster at start and for /readyz, against a real 3-master cluster.
let cluster: LocalCluster;
let client: RedisClient;
const warnings: string[] = [];
const log = { warn: (_o: Record<string, unknown>, msg: string) => warnings.push(msg) };

beforeAll(async () => {
  cluster = await startLocalCluster({ masters: 3 });
  const nodes = cluster.nodes.map((n) => ({ host: n.host, port: n.port }));
  client = createRedis(
    { mode: 'cluster', nodes: nodes.slice(0, 1), username: null, password: null, tls: false, natMap: null },
    'request',
    'cluster-checks',
  );
  await waitReady(client, 10_000);
}, 30_000);

afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

describe('a Redis Cluster', () => {
  it('is ready when every slot is served, from one seed node', async () => {
    expect(await redisAnswers(client)).toBe(true);
  });

  it('is refused in production when any one master may evict keys, though the seed node is fine', async () => {
    expect((await checkRedisConfig(client, { env: 'production', log, allowNoAof: true })).maxmemoryPolicy).toBe(
      'noeviction',
    );
    const third = cluster.nodes[2];
    if (!third) throw new Error('no third master');
    const admin = new Redis(third.port, third.host);
    try {
      await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
      await expect(checkRedisConfig(client, { env: 'production', log, allowNoAof: true })).rejects.toBeInstanceOf(
        RedisConfigError,
      );
      await expect(checkRedisConfig(client, { env: 'production', log, allowNoAof: true })).rejects.toThrow(
        /allkeys-lru/,
      );
    } finally {
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      admin.disconnect();
    }
  });

  it('is not ready once a master without a replica is gone (cluster_state:fail)', async () => {
    const last = cluster.nodes[2];
    if (!last) throw new Error('no third master');
    const admin = new Redis(last.port, last.host).on('error', () => {});
    await admin.shutdown('NOSAVE').catch(() => {});
    admin.disconnect();
    // The other nodes mark it failed after the node timeout (2 s here), then answer cluster_state:fail.
    const deadline = Date.now() + 15_000;
    let ready = true;
    while (ready && Date.now() < deadline) {
      ready = await redisAnswers(client);
      if (ready) await new Promise((r) => setTimeout(r, 200));
    }
    expect(ready).toBe(false);
  }, 20_000);
});
