import type { TestProject } from 'vitest/node';
import type { TestRedisTopology } from './redis.js';
import { startLocalCluster } from './redis-cluster.js';
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
    return () => cluster.stop();
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
