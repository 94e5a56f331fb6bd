import type { RedisConnection } from '@otp-gateway/core';
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { reportStoreError } from './errors.js';

/** A connection in any of the three modes: scripts, queues and repositories take either. */
export type RedisClient = Redis | Cluster;

/**
 * How a connection behaves when Redis is away:
 * - `request`: fail fast (no offline queue, 700 ms command timeout) so the API answers 503 instead of hanging;
 * - `worker`: wait and retry forever (BullMQ workers need maxRetriesPerRequest null).
 */
export type ConnectionRole = 'request' | 'worker';

const retryStrategy = (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000);

function roleOptions(role: ConnectionRole): RedisOptions {
  return role === 'request'
    ? { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 700, connectTimeout: 1000 }
    : { maxRetriesPerRequest: null, enableReadyCheck: true };
}

/**
 * ioredis auto-pipelining (the commands of one event-loop turn in one write) stays off on every connection. Every
 * `request` connection had it (the API's, the callbacks app's, the dashboard's) and so did the worker's scripts
 * connection, until issue 12 measured it on 2 cores, on and off in the same hour. Off:
 * - the API served 5,230-5,450 sends a second against 4,860-4,990, and its p99 at a paced 2,000 a second fell
 *   from 32-36 ms to 5-6 ms;
 * - the worker drained 0.40-0.42 of a no-op BullMQ worker against 0.33-0.36;
 * - the callbacks app, in two full `pnpm bench` runs two hours apart: 10,756 callbacks a second against 9,488,
 *   p99 at 500 a second 4 ms against 24.
 * Each turn's pipeline (a Pipeline object, its promise, a copy of the connection's commands) lived long enough to
 * be promoted to the old generation: some 10 MB a second at 2,000 sends, hence a full garbage collection every
 * few seconds, each stalling requests for 20 to 40 ms. The guards and the request counters batch their own calls
 * per turn (turn-batch.ts): that is where sharing one call paid.
 */
const AUTO_PIPELINING = false;

/**
 * Opens a connection for `role` in the configured mode; it reconnects by itself with a capped backoff.
 * - single: `REDIS_URL`;
 * - cluster: ioredis `Cluster` over the seed nodes, reads and writes on masters. With TLS the node addresses are
 *   used as given (no DNS lookup), which is what managed services with TLS certificates for their hostnames need;
 *   `natMap` maps the addresses the nodes announce to reachable ones;
 * - sentinel: ioredis asks the sentinels for the current primary and follows failovers.
 */
export function createRedis(conn: RedisConnection, role: ConnectionRole, name?: string): RedisClient {
  const common: RedisOptions = { connectionName: name, retryStrategy, ...roleOptions(role) };
  let client: RedisClient;
  if (conn.mode === 'single') {
    client = new Redis(conn.url, { ...common, enableAutoPipelining: AUTO_PIPELINING });
  } else if (conn.mode === 'cluster') {
    const opts: ClusterOptions = {
      redisOptions: {
        ...common,
        ...(conn.username ? { username: conn.username } : {}),
        ...(conn.password ? { password: conn.password } : {}),
        ...(conn.tls ? { tls: {} } : {}),
      },
      scaleReads: 'master',
      // (on a cluster it could not be on anyway: ioredis groups commands by node from its slot map, and refuses a
      // batch whose keys it placed on two nodes, "same slots allocation group", while that map is being filled)
      enableAutoPipelining: AUTO_PIPELINING,
      enableOfflineQueue: role === 'worker',
      clusterRetryStrategy: retryStrategy,
      slotsRefreshTimeout: 2000,
      ...(conn.natMap ? { natMap: { ...conn.natMap } } : {}),
      ...(conn.tls ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
    };
    client = new Cluster(
      conn.nodes.map((n) => ({ host: n.host, port: n.port })),
      opts,
    );
  } else {
    client = new Redis({
      ...common,
      sentinels: conn.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: conn.name,
      // After a failover the old primary stays writable until the sentinels demote it: leave it at once.
      failoverDetector: true,
      ...(conn.sentinelPassword ? { sentinelPassword: conn.sentinelPassword } : {}),
      ...(conn.username ? { username: conn.username } : {}),
      ...(conn.password ? { password: conn.password } : {}),
      ...(conn.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
      enableAutoPipelining: AUTO_PIPELINING,
    });
  }
  // Errors surface through commands and readiness too; these (reconnects failing, ...) are logged rate-limited
  // and counted by the process's sink (see errors.ts). Without a listener ioredis would print them to stderr.
  client.on('error', (err) => reportStoreError('redis', err));
  return client;
}

/** The masters of a cluster, or the one server (or current primary) otherwise: where keys live. */
export function masters(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes('master') : [redis];
}

/**
 * Readiness: true when the store answers within `timeoutMs` (a hung Redis is not ready). One server or a
 * Sentinel's primary: PING. A cluster: `CLUSTER INFO` says `cluster_state:ok` (every slot served).
 */
export async function redisAnswers(redis: RedisClient, timeoutMs = 800): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const check = async () => {
    if (redis instanceof Cluster) {
      const info = String(await redis.cluster('INFO'));
      return /cluster_state:ok/.test(info);
    }
    return (await redis.ping()) === 'PONG';
  };
  try {
    return await Promise.race([
      check(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
      }),
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Whether every connection a process opened answers (redisAnswers, each with its own timeout): its readiness. */
export async function redisAllAnswer(clients: readonly RedisClient[]): Promise<boolean> {
  const answers = await Promise.all(clients.map((c) => redisAnswers(c)));
  return answers.every(Boolean);
}

/** Resolves once the client is connected (cluster: slots known), or false after `timeoutMs`. */
export function waitReady(redis: RedisClient, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  if (redis.status === 'wait') void redis.connect().catch(() => {});
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    redis.on('ready', onReady);
  });
}
