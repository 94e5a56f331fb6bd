import type { TestProject } from 'vitest/node';
import type { TestRedisTopology } from './redis.js';
import { type LocalCluster, startLocalCluster } from './redis-cluster.js';
import { startLocalRedis } from './redis-server.js';

/**
 * The suite's Redis, one for the run; each test file takes its own key prefix (redis.ts).
 * - `OTP_TEST_REDIS=cluster`: a 3-master Redis Cluster started from redis-server (REDIS_CLUSTER_NODES to use one
 *   of your own);
 * - otherwise one Redis: REDIS_URL when given, else a testcontainers Redis when a Docker engine answers, else a
 *   local redis-server on a free port. Stopped after the run.
 */
export default async function setup(project: TestProject) {
  const provide = (t: TestRedisTopology) => project.provide('redisTopology', t);
  if (process.env.OTP_TEST_REDIS === 'cluster') {
    if (process.env.REDIS_CLUSTER_NODES) {
      provide({ mode: 'cluster', nodes: process.env.REDIS_CLUSTER_NODES });
      return;
    }
    const cluster = await startLocalCluster({ masters: 3 });
    provide({ mode: 'cluster', nodes: cluster.nodesEnv });
    return async () => {
      try {
        // Only a whole run proves the spread (a subset of files may touch few OTPs): not with file filters (as
        // scripts/vitest-rerun.sh tells them: `test/worker`, a `.test.ts` path) or a test name pattern.
        const filtered = process.argv
          .slice(2)
          .some(
            (a) =>
              /\.test\.ts$|^(test|apps|packages)\//.test(a) || a.startsWith('-t') || a.startsWith('--testNamePattern'),
          );
        if (!filtered) await expectWorkOnEveryMaster(cluster);
      } finally {
        await cluster.stop();
      }
    };
  }
  if (process.env.REDIS_URL) {
    provide({ mode: 'single', url: process.env.REDIS_URL });
    return;
  }
  const container = await tryContainer();
  if (container) {
    provide({ mode: 'single', url: container.url });
    return () => container.stop();
  }
  const local = await startLocalRedis();
  provide({ mode: 'single', url: local.url });
  return () => local.stop();
}

/**
 * After a run on the cluster: every master holds OTP records and at least one send queue shard's keys, so the
 * suite cannot pass with everything on one node. Fails the run (exit code 1) when one does not.
 */
async function expectWorkOnEveryMaster(cluster: LocalCluster): Promise<void> {
  const { Redis } = await import('ioredis');
  const missing: string[] = [];
  for (const node of cluster.nodes) {
    const redis = new Redis(node.port, node.host);
    try {
      const has = async (pattern: string) => {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
          if (keys.length > 0) return true;
          cursor = next;
        } while (cursor !== '0');
        return false;
      };
      if (!(await has('*:{p*}:o:otp_*'))) missing.push(`${node.port} holds no OTP record`);
      if (!(await has('*:{q*}:otp-send-*'))) missing.push(`${node.port} holds no send queue shard`);
    } finally {
      redis.disconnect();
    }
  }
  if (missing.length > 0) {
    process.exitCode = 1;
    throw new Error(`the cluster run left masters without work: ${missing.join('; ')}`);
  }
  console.log(`cluster spread: every one of ${cluster.nodes.length} masters holds OTP records and a send queue shard`);
}

async function tryContainer(): Promise<{ url: string; stop(): Promise<unknown> } | null> {
  if (process.env.OTP_TEST_NO_DOCKER === '1') return null;
  try {
    const { getContainerRuntimeClient, GenericContainer, Wait } = await import('testcontainers');
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('docker timeout')), 5000)),
    ]);
    const c = await new GenericContainer('redis:7-alpine')
      .withCommand(['redis-server', '--save', '', '--appendonly', 'no'])
      .withExposedPorts(6379)
      .withWaitStrategy(Wait.forLogMessage('Ready to accept connections'))
      .start();
    return { url: `redis://${c.getHost()}:${c.getMappedPort(6379)}`, stop: () => c.stop() };
  } catch {
    return null;
  }
}
