import type { EnvReader } from './env-reader.js';

/** host:port of a Redis node or sentinel. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * How every process reaches Redis: exactly one of three modes.
 * - `single`: `REDIS_URL` (one server, or a primary with replicas that never fails over by itself);
 * - `cluster`: `REDIS_CLUSTER_NODES` (Redis or Valkey Cluster, managed services in cluster mode);
 * - `sentinel`: `REDIS_SENTINELS` and `REDIS_SENTINEL_NAME` (a primary and replicas behind Sentinel).
 */
export type RedisConnection =
  | { readonly mode: 'single'; readonly url: string }
  | {
      readonly mode: 'cluster';
      /** Seed nodes: the client discovers the rest from them. */
      readonly nodes: readonly HostPort[];
      readonly username: string | null;
      readonly password: string | null;
      readonly tls: boolean;
      /**
       * Addresses the nodes announce mapped to the ones this process can reach (`REDIS_NAT_MAP`), for clusters
       * behind NAT or port mapping; null when none.
       */
      readonly natMap: Readonly<Record<string, HostPort>> | null;
    }
  | {
      readonly mode: 'sentinel';
      readonly sentinels: readonly HostPort[];
      /** The name the sentinels monitor the primary under. */
      readonly name: string;
      readonly sentinelPassword: string | null;
      readonly username: string | null;
      readonly password: string | null;
      readonly tls: boolean;
    };

export interface RedisConfig {
  readonly connection: RedisConnection;
  /**
   * The first segment of every key the gateway writes, BullMQ's included (`REDIS_KEY_PREFIX`, default `otp`), so
   * several gateways, or test files, can share one Redis.
   */
  readonly keyPrefix: string;
  /**
   * Replicas that must hold an OTP before the API answers 202 (`REDIS_WAIT_REPLICAS`, Redis WAIT): default 1 behind
   * Sentinel, so a failover cannot lose an accepted OTP; 0 otherwise. Not available on a cluster.
   */
  readonly waitReplicas: number;
}

const DEFAULT_URL = 'redis://127.0.0.1:6379';

/** Reads the Redis variables; a mix of modes, or a bad value, is a problem naming the variables. */
export function readRedisConfig(r: EnvReader): RedisConfig {
  const keyPrefix = r.str('REDIS_KEY_PREFIX') ?? 'otp';
  if (!/^[A-Za-z0-9_.-]{1,32}$/.test(keyPrefix)) {
    r.problems.push('REDIS_KEY_PREFIX must be 1 to 32 letters, digits, _ . or - (no braces: they are hash tags)');
  }
  const url = r.str('REDIS_URL');
  const clusterNodes = r.str('REDIS_CLUSTER_NODES');
  const sentinels = r.str('REDIS_SENTINELS');
  const given = [url && 'REDIS_URL', clusterNodes && 'REDIS_CLUSTER_NODES', sentinels && 'REDIS_SENTINELS'].filter(
    Boolean,
  );
  if (given.length > 1) {
    r.problems.push(
      `set exactly one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS (got ${given.join(' and ')})`,
    );
  }
  const waitReplicas = r.int('REDIS_WAIT_REPLICAS', sentinels && given.length === 1 ? 1 : 0, 0, 5);
  if (clusterNodes && waitReplicas > 0) {
    r.problems.push(
      'REDIS_WAIT_REPLICAS is not available with REDIS_CLUSTER_NODES (see the README on cluster failover)',
    );
  }
  const username = r.str('REDIS_USERNAME');
  const password = r.str('REDIS_PASSWORD');
  const tls = r.bool('REDIS_TLS', false);

  if (clusterNodes && given.length === 1) {
    return {
      keyPrefix,
      waitReplicas,
      connection: {
        mode: 'cluster',
        nodes: hostPorts(r, 'REDIS_CLUSTER_NODES', clusterNodes),
        username,
        password,
        tls,
        natMap: natMap(r),
      },
    };
  }
  if (sentinels && given.length === 1) {
    const name = r.str('REDIS_SENTINEL_NAME');
    if (!name)
      r.problems.push('REDIS_SENTINEL_NAME is required with REDIS_SENTINELS (the name of the monitored primary)');
    return {
      keyPrefix,
      waitReplicas,
      connection: {
        mode: 'sentinel',
        sentinels: hostPorts(r, 'REDIS_SENTINELS', sentinels),
        name: name ?? '',
        sentinelPassword: r.str('REDIS_SENTINEL_PASSWORD'),
        username,
        password,
        tls,
      },
    };
  }
  const single = r.url('REDIS_URL', DEFAULT_URL, 'redis') ?? DEFAULT_URL;
  if (!/^rediss?:/.test(single)) r.problems.push('REDIS_URL must start with redis:// or rediss://');
  return { keyPrefix, waitReplicas, connection: { mode: 'single', url: single } };
}

function hostPorts(r: EnvReader, name: string, raw: string): HostPort[] {
  const out: HostPort[] = [];
  for (const part of raw.split(',')) {
    const hp = parseHostPort(part.trim());
    if (hp) out.push(hp);
    else if (part.trim()) r.problems.push(`${name} entry "${part.trim()}" is not host:port`);
  }
  if (out.length === 0) r.problems.push(`${name} must list at least one host:port`);
  return out;
}

function parseHostPort(s: string): HostPort | null {
  const m = /^\[?([A-Za-z0-9_.:-]+?)\]?:(\d{1,5})$/.exec(s);
  const port = Number(m?.[2]);
  return m?.[1] && port > 0 && port < 65536 ? { host: m[1], port } : null;
}

/** `REDIS_NAT_MAP=10.0.0.5:6379=203.0.113.7:16379,...`: announced address = reachable address. */
function natMap(r: EnvReader): Record<string, HostPort> | null {
  const raw = r.str('REDIS_NAT_MAP');
  if (!raw) return null;
  const map: Record<string, HostPort> = {};
  for (const entry of raw.split(',')) {
    const [from, to] = entry.trim().split('=');
    const target = to ? parseHostPort(to) : null;
    if (!from || !parseHostPort(from) || !target) {
      r.problems.push(`REDIS_NAT_MAP entry "${entry.trim()}" must be host:port=host:port`);
    } else map[from] = target;
  }
  return map;
}
