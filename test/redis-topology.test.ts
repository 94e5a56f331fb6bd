import { spawnSync } from 'node:child_process';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster, waitFor } from './support/redis-cluster.js';
import { type LocalSentinel, startLocalSentinel } from './support/redis-sentinel.js';

// CI installs redis-server, so this runs there; the skip only spares a laptop without it.
const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

describe.skipIf(!hasRedisServer)('local Redis Cluster (3 masters, 1 replica each)', () => {
  let cluster: LocalCluster;
  let client: Cluster;
  const keys = Array.from({ length: 30 }, (_, i) => `otp:{p${i}}:probe`);

  /** Which master each key is on, asked of the masters themselves (a master answers MOVED for others' keys). */
  const holders = async () =>
    Promise.all(
      keys.map(async (k) => {
        const slot = Number(await client.call('CLUSTER', 'KEYSLOT', k));
        const direct = new Redis({ port: cluster.masterOfSlot(slot), maxRetriesPerRequest: 0 });
        try {
          return { port: direct.options.port, value: await direct.get(k) };
        } finally {
          direct.disconnect();
        }
      }),
    );

  beforeAll(async () => {
    cluster = await startLocalCluster({ masters: 3, replicasPerMaster: 1 });
    client = new Cluster(
      cluster.nodesEnv.split(',').map((hp) => ({ host: '127.0.0.1', port: Number(hp.split(':')[1]) })),
    );
  });
  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  it('fails with what redis-server said when a node cannot start', async () => {
    await expect(startLocalCluster({ masters: 1, args: ['--no-such-option', 'x'] })).rejects.toThrow(/no-such-option/);
  });

  it('spreads slots evenly over the masters, each with its replica', () => {
    expect(cluster.replicas.map((r) => r.masterPort)).toEqual(cluster.nodes.map((n) => n.port));
    expect([0, 5460, 5461, 10922, 10923, 16383].map((s) => cluster.masterOfSlot(s))).toEqual(
      [0, 0, 1, 1, 2, 2].map((i) => cluster.nodes[i]!.port),
    );
  });

  it('stores keys on every master and keeps them through a replica failover', async () => {
    for (const k of keys) await client.set(k, k);
    const before = await holders();
    expect(before.map((h) => h.value)).toEqual(keys);
    expect(new Set(before.map((h) => h.port))).toEqual(new Set(cluster.nodes.map((n) => n.port)));

    const replica = cluster.replicas[0]!;
    await cluster.failover(replica.port);
    expect(cluster.nodes.map((n) => n.port)).toContain(replica.port);
    expect(cluster.replicas.find((r) => r.port === replica.masterPort)?.masterPort).toBe(replica.port);

    // The client follows MOVED to the promoted replica; masterOfSlot already names it.
    for (const k of keys) expect(await client.get(k)).toBe(k);
    for (const k of keys) await client.set(k, `${k}:after`);
    const after = await holders();
    expect(after.map((h) => h.value)).toEqual(keys.map((k) => `${k}:after`));
    expect(after.some((h) => h.port === replica.port)).toBe(true);
  });
});

describe.skipIf(!hasRedisServer)('local Sentinel set (primary, replica, 3 sentinels)', () => {
  let set: LocalSentinel;
  let plain: Redis;
  let detecting: Redis;
  const servedBy = async (c: Redis) => Number(/tcp_port:(\d+)/.exec(await c.info('server'))?.[1]);

  beforeAll(async () => {
    set = await startLocalSentinel();
    const sentinels = set.sentinels.map((s) => ({ ...s }));
    // Both are cut when the sentinels reconfigure their node: commands reconnect, the events are expected.
    plain = new Redis({ sentinels, name: set.name }).on('error', () => {});
    // Without the detector a client stays on the old primary, and loses what it writes there, until the
    // sentinels demote it (see LocalSentinel.failover).
    detecting = new Redis({ sentinels, name: set.name, failoverDetector: true }).on('error', () => {});
  });
  afterAll(async () => {
    plain?.disconnect();
    detecting?.disconnect();
    await set?.stop();
  });

  it('follows a SENTINEL FAILOVER to the new primary and keeps what was written before', async () => {
    const before = await set.primaryPort();
    await detecting.set('otp:probe', 'before failover');
    expect(await servedBy(detecting)).toBe(before);

    await set.failover();
    const after = await set.primaryPort();
    expect(after).not.toBe(before);
    expect(set.dataPorts).toEqual(expect.arrayContaining([before, after]));

    await waitFor(
      'the detecting client to reach the new primary',
      async () => (await servedBy(detecting)) === after,
      3000,
    );
    await detecting.set('otp:probe2', 'after failover');
    expect(await detecting.get('otp:probe')).toBe('before failover');

    await set.settled();
    const direct = new Redis({ port: before });
    try {
      expect((await direct.call('ROLE')) as unknown[]).toEqual(expect.arrayContaining(['slave', after]));
    } finally {
      direct.disconnect();
    }
    expect(await plain.get('otp:probe2')).toBe('after failover');
    expect(await servedBy(plain)).toBe(after);
  });
});
