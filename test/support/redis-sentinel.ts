import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminClients, freePorts, type RedisProcess, spawnRedis, waitFor } from './redis-cluster.js';

/** One primary, one replica and three sentinels the tests own, on free loopback ports. */
export interface LocalSentinel {
  /** The monitored master's name, the value of REDIS_SENTINEL_NAME. */
  readonly name: string;
  readonly sentinels: readonly { host: string; port: number }[];
  /** `127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3`, the value of REDIS_SENTINELS. */
  readonly sentinelsEnv: string;
  /** Ports of the two data nodes (primary and replica, in no particular order after a failover). */
  readonly dataPorts: readonly number[];
  /** The primary's port as the first sentinel reports it now. */
  primaryPort(): Promise<number>;
  /**
   * Waits until the replica has what the primary acknowledged so far, then SENTINEL FAILOVER; resolves once
   * every sentinel names the other node and it answers ROLE master. Writes made during the call may be lost
   * (replication is asynchronous). The old primary is still a writable master then: the sentinels demote it
   * ~2 s later (10-20 s with stock timers) and what a client wrote to it meanwhile is lost; ioredis'
   * `failoverDetector: true` leaves it at once.
   */
  failover(): Promise<void>;
  /** Resolves once the old primary replicates the new one and every sentinel sees it: the set can fail over again. */
  settled(): Promise<void>;
  /** Kills every process and removes their files. */
  stop(): Promise<void>;
}

/**
 * Starts the set; resolves once the replica is in sync and every sentinel knows the replica and its peers.
 * `fast` (default true) shortens the sentinels' INFO and hello periods; `fast: false` keeps stock timers.
 */
export async function startLocalSentinel(
  opts: { name?: string; args?: string[]; fast?: boolean } = {},
): Promise<LocalSentinel> {
  const name = opts.name ?? 'otp-primary';
  const dir = mkdtempSync(join(tmpdir(), 'otp-sentinel-'));
  const procs: RedisProcess[] = [];
  const { admin, closeAdmin } = adminClients();
  const stop = async () => {
    closeAdmin();
    await Promise.all(procs.map((p) => p.kill()));
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const [primary, replica, ...sentinelPorts] = (await freePorts(5)) as [number, number, number, number, number];
    const data = (port: number) => [
      ...['--port', `${port}`, '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'],
      // A primary waits 5 s by default before a full sync, in case more replicas come: none will.
      ...['--repl-diskless-sync-delay', '0'],
      // Replicas load the primary's RDB through a file in the shared dir: one file name per node.
      ...['--dbfilename', `dump-${port}.rdb`, '--maxmemory-policy', 'noeviction', ...(opts.args ?? [])],
    ];
    await spawnRedis(primary, data(primary), procs);
    await spawnRedis(replica, [...data(replica), '--replicaof', '127.0.0.1', `${primary}`], procs);
    await Promise.all(
      sentinelPorts.map((port) => {
        // A sentinel rewrites its config file as it learns, so each gets its own writable file.
        const conf = join(dir, `sentinel-${port}.conf`);
        writeFileSync(
          conf,
          [
            `port ${port}`,
            'bind 127.0.0.1',
            `dir ${dir}`,
            `sentinel monitor ${name} 127.0.0.1 ${primary} 2`,
            `sentinel down-after-milliseconds ${name} 1000`,
            `sentinel failover-timeout ${name} 5000`,
            `sentinel parallel-syncs ${name} 1`,
            '',
          ].join('\n'),
        );
        return spawnRedis(port, [conf, '--sentinel'], procs, '+monitor master');
      }),
    );

    if (opts.fast !== false) {
      // Sentinel timers (Redis 7): INFO every 1 s instead of 10 s, hello every 0.5 s instead of 2 s. The
      // demoted primary then follows the new one after ~2 s instead of 10-20 s, and peers meet sooner.
      await Promise.all(
        sentinelPorts.map((s) => admin(s).call('SENTINEL', 'DEBUG', 'INFO-PERIOD', 1000, 'PUBLISH-PERIOD', 500)),
      );
    }
    const primaryPort = async (sentinel = sentinelPorts[0]) => {
      const [, port] = (await admin(sentinel).call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as [string, string];
      return Number(port);
    };
    const other = (port: number) => (port === primary ? replica : primary);
    // "The primary" is what the first sentinel says; the other data node must follow it.
    const settled = async (ms: number) => {
      const next = await primaryPort();
      const old = other(next);
      const want = `primary ${next}, 2 peers, ${old} slave link ok`;
      let seen: string[] = [];
      await waitFor(
        `${old} to replicate ${next} and the sentinels to know both and their 2 peers`,
        async () => {
          const views = await Promise.all(
            sentinelPorts.map(async (s) => {
              const reps = (await admin(s).call('SENTINEL', 'REPLICAS', name)) as string[][];
              const peers = (await admin(s).call('SENTINEL', 'SENTINELS', name)) as unknown[];
              const rep = reps.find((r) => field(r, 'port') === `${old}`) ?? [];
              const link = `${field(rep, 'flags')} link ${field(rep, 'master-link-status')}`;
              return `primary ${await primaryPort(s)}, ${peers.length} peers, ${old} ${link}`;
            }),
          );
          const [role, , master, link] = (await admin(old).call('ROLE')) as [string, string, number, string];
          seen = [...views, `${old}: ${role} of ${master} ${link}`];
          // Only the first sentinel, which `failover` asks, must have seen the link up: the others may not
          // have read the replica's INFO since (every INFO period).
          const known = views.every((v, i) => (i === 0 ? v === want : v.startsWith(want.replace(/ ok$/, ''))));
          return known && role === 'slave' && master === next && link === 'connected';
        },
        ms,
        () => `want ${want}, last seen:\n${seen.join('\n')}`,
      );
    };
    // Sentinels learn of each other from hello messages (every publish period): most of the start time.
    await settled(10_000);

    return {
      name,
      sentinels: sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
      sentinelsEnv: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
      dataPorts: [primary, replica],
      primaryPort: () => primaryPort(),
      async failover() {
        const old = await primaryPort();
        const next = other(old);
        // SENTINEL FAILOVER promotes the replica at once, caught up or not, and replication is asynchronous
        // (after a full sync Redis 7 even holds the stream until the replica's first ack, up to 1 s): wait
        // for what the primary holds now, so what was acknowledged before this call survives.
        const target = offset(await admin(old).info('replication'), 'master_repl_offset');
        await waitFor(
          `${next} to catch up with ${old} (offset ${target})`,
          async () => offset(await admin(next).info('replication'), 'slave_repl_offset') >= target,
          5000,
        );
        await admin(sentinelPorts[0]).call('SENTINEL', 'FAILOVER', name);
        await waitFor(
          `every sentinel to name ${next} primary and ${next} to answer ROLE master`,
          async () => {
            const named = await Promise.all(sentinelPorts.map((s) => primaryPort(s)));
            const [role] = (await admin(next).call('ROLE')) as [string];
            return named.every((p) => p === next) && role === 'master';
          },
          10_000,
        );
      },
      settled: () => settled(30_000),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A field of a SENTINEL REPLICAS entry, which comes as a flat [name, value, name, value, ...] list. */
function field(entry: string[], key: string): string | undefined {
  const i = entry.indexOf(key);
  return i >= 0 && i % 2 === 0 ? entry[i + 1] : undefined;
}

/** A numeric field of INFO replication. */
function offset(info: string, key: string): number {
  return Number(new RegExp(`^${key}:(\\d+)`, 'm').exec(info)?.[1] ?? -1);
}
