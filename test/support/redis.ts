import { inject } from 'vitest';
import { EnvReader, type RedisConfig, readRedisConfig } from '../../packages/core/src/index.js';
import {
  connectStore,
  createKeyspace,
  type Keyspace,
  masters,
  type RedisClient,
  waitReady,
} from '../../packages/store/src/index.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The suite's Redis (see global-setup.ts): one server, or a cluster when OTP_TEST_REDIS=cluster. */
    redisTopology: TestRedisTopology;
  }
}

/** Where the suite's Redis is. */
export type TestRedisTopology = { mode: 'single'; url: string } | { mode: 'cluster'; nodes: string };

/** A test file's own share of the suite's Redis: its own key prefix, so files run in parallel on one server or cluster. */
export interface IsolatedStore {
  /** What a gateway process needs: REDIS_URL or REDIS_CLUSTER_NODES, and this file's REDIS_KEY_PREFIX. */
  readonly env: Record<string, string>;
  readonly prefix: string;
  readonly ks: Keyspace;
  readonly redisConfig: RedisConfig;
  /** An admin client (a cluster client in cluster mode) for inspecting state. */
  readonly redis: RedisClient;
  /** True on a cluster. */
  readonly cluster: boolean;
}

let counter: RedisClient | undefined;

/** The connection variables of the suite's Redis, without a prefix. */
export function topologyEnv(): Record<string, string> {
  const t = inject('redisTopology');
  // On a cluster the send queue has a shard per master, so the suite exercises every one.
  return t.mode === 'cluster' ? { REDIS_CLUSTER_NODES: t.nodes, SEND_QUEUE_SHARDS: '3' } : { REDIS_URL: t.url };
}

/**
 * A key prefix of its own for the calling test file (or for one test that wants a clean slate), on the suite's
 * Redis, or on the Redis that `connection` names (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS variables).
 */
export async function isolatedRedis(connection?: Record<string, string>): Promise<IsolatedStore> {
  const base = connection ?? topologyEnv();
  const baseConfig = readRedisConfig(new EnvReader(base));
  const cluster = baseConfig.connection.mode === 'cluster';
  let prefix: string;
  if (connection) prefix = `x${process.pid}${Math.floor(Math.random() * 1e6)}`;
  else {
    counter ??= connectStore({ redis: baseConfig }, 'worker', 'otp-tests').redis;
    prefix = `t${await counter.incr('otp-tests:prefix-counter')}`;
  }
  const env = { ...base, REDIS_KEY_PREFIX: prefix };
  const redisConfig: RedisConfig = { ...baseConfig, keyPrefix: prefix };
  const { redis } = connectStore({ redis: redisConfig }, 'worker', 'otp-tests-admin');
  await waitReady(redis, 10_000);
  return { env, prefix, ks: createKeyspace(prefix), redisConfig, redis, cluster };
}

/** Every key under a prefix, over every master. */
export async function keysUnder(redis: RedisClient, prefix: string): Promise<string[]> {
  const names = new Set<string>();
  for (const node of masters(redis)) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      for (const k of batch) names.add(k);
      cursor = next;
    } while (cursor !== '0');
  }
  return [...names].sort();
}

/** Closes the clients isolatedRedis opened. */
export async function closeRedisClients(...clients: (RedisClient | undefined)[]): Promise<void> {
  await Promise.all(clients.map((c) => c?.quit().catch(() => c.disconnect())));
}
