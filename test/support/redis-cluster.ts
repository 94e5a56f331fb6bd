import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './redis-server.js';

/** A Redis Cluster the tests own, started from `redis-server` processes on free loopback ports. */
export interface LocalCluster {
  /** The current masters, in slot order (changes after `failover`). */
  readonly nodes: readonly { host: string; port: number }[];
  /** The current replicas and the port of the master each follows (changes after `failover`). */
  readonly replicas: readonly { host: string; port: number; masterPort: number }[];
  /** `127.0.0.1:p1,127.0.0.1:p2,...`: the masters at start, the value of REDIS_CLUSTER_NODES. */
  readonly nodesEnv: string;
  /** Port of the node that serves `slot` now. */
  masterOfSlot(slot: number): number;
  /** CLUSTER FAILOVER on a replica; resolves once every node shows it as master and cluster_state:ok. */
  failover(replicaPort: number): Promise<void>;
  /** Kills every node and removes their files. */
  stop(): Promise<void>;
}

/** A redis-server process (any mode) started by `spawnRedis`. */
export interface RedisProcess {
  readonly port: number;
  readonly child: ChildProcess;
  /** SIGKILL, resolved once the process is gone. */
  kill(): Promise<void>;
}

/** `n` distinct free loopback ports (a node needs two: clients and the cluster bus). */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/**
 * Runs `redis-server args`, adds it to `owned` at once (so whoever stops `owned` also stops a process still
 * starting), and resolves once its log shows `readyLine`: a sentinel never logs "Ready to accept
 * connections", so it passes its own line. Rejects with the log if it exits or is slow.
 */
export async function spawnRedis(
  port: number,
  args: string[],
  owned: RedisProcess[],
  readyLine = 'Ready to accept',
): Promise<RedisProcess> {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  const proc = { port, child, kill };
  owned.push(proc);
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      if (output.includes(readyLine)) return; // keep draining the pipe, stop keeping the log
      output += d;
      if (output.includes(readyLine)) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (e) => reject(new Error(`cannot run redis-server (${e.message}): apt-get install it`)));
    child.once('exit', (code) => reject(new Error(`redis-server on ${port} exited with ${code}:\n${output}`)));
    setTimeout(() => reject(new Error(`redis-server on ${port} not ready after 10 s:\n${output}`)), 10_000).unref();
  });
  return proc;
}

/** Polls `ok` every 50 ms until it returns true; on timeout the error carries `what` and `state()`. */
export async function waitFor(what: string, ok: () => Promise<boolean>, ms: number, state = () => '') {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await ok().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${state()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One lazily opened client per port, for the helpers' own admin commands; `closeAdmin` drops them all. */
export function adminClients(): { admin(port: number): Redis; closeAdmin(): void } {
  const clients = new Map<number, Redis>();
  return {
    admin(port) {
      // Failovers cut these connections (a sentinel kills clients of the nodes it reconfigures): commands
      // fail and are retried by waitFor, so the error events are not news.
      const c =
        clients.get(port) ?? new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 }).on('error', () => {});
      clients.set(port, c);
      return c;
    },
    closeAdmin() {
      for (const c of clients.values()) c.disconnect();
    },
  };
}

interface Shard {
  start: number;
  end: number;
  master: number;
  replicas: number[];
}

/** Starts a cluster: `masters` masters (default 3) with slots spread evenly, each with `replicasPerMaster`. */
export async function startLocalCluster(
  opts: { masters?: number; replicasPerMaster?: 0 | 1; args?: string[] } = {},
): Promise<LocalCluster> {
  const masters = opts.masters ?? 3;
  const perMaster = opts.replicasPerMaster ?? 0;
  const total = masters * (1 + perMaster);
  const dir = mkdtempSync(join(tmpdir(), 'otp-cluster-'));
  const procs: RedisProcess[] = [];
  const { admin, closeAdmin } = adminClients();
  const stop = async () => {
    closeAdmin();
    await Promise.all(procs.map((p) => p.kill()));
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const ports = await freePorts(total * 2);
    // Node i listens on ports[2i] with its bus on ports[2i+1]; masters come first, then their replicas.
    const nodes = Array.from({ length: total }, (_, i) => ({ port: ports[2 * i]!, bus: ports[2 * i + 1]! }));
    await Promise.all(
      nodes.map((n) => spawnRedis(n.port, [...nodeArgs(dir, n.port, n.bus), ...(opts.args ?? [])], procs)),
    );

    const shards: Shard[] = Array.from({ length: masters }, (_, i) => ({
      start: Math.round((i * 16384) / masters),
      end: i === masters - 1 ? 16383 : Math.round(((i + 1) * 16384) / masters) - 1,
      master: nodes[i]!.port,
      replicas: nodes.slice(masters + i * perMaster, masters + (i + 1) * perMaster).map((n) => n.port),
    }));
    // Distinct config epochs before MEET, as redis-cli does, so no epoch collision has to be resolved.
    await Promise.all(nodes.map((n, i) => admin(n.port).cluster('SET-CONFIG-EPOCH', i + 1)));
    await Promise.all(shards.map((s) => admin(s.master).call('CLUSTER', 'ADDSLOTSRANGE', s.start, s.end)));
    // Every pair meets directly (MEET takes the bus port as third argument): gossip from one introducer
    // takes a second or more.
    for (const [i, a] of nodes.entries()) {
      for (const b of nodes.slice(i + 1)) await admin(a.port).call('CLUSTER', 'MEET', '127.0.0.1', b.port, b.bus);
    }
    // REPLICATE answers "Unknown node" until the replica has met its master: retried until it succeeds.
    for (const s of shards) {
      const id = String(await admin(s.master).call('CLUSTER', 'MYID'));
      for (const r of s.replicas) {
        await waitFor(
          `${r} to replicate ${s.master}`,
          async () => !!(await admin(r).call('CLUSTER', 'REPLICATE', id)),
          10_000,
        );
      }
    }
    const allPorts = nodes.map((n) => n.port);
    await waitSettled(shards, allPorts, admin, 10_000);

    return {
      get nodes() {
        return shards.map((s) => ({ host: '127.0.0.1', port: s.master }));
      },
      get replicas() {
        return shards.flatMap((s) => s.replicas.map((port) => ({ host: '127.0.0.1', port, masterPort: s.master })));
      },
      nodesEnv: shards.map((s) => `127.0.0.1:${s.master}`).join(','),
      masterOfSlot(slot) {
        const s = shards.find((x) => slot >= x.start && slot <= x.end);
        if (!s) throw new Error(`slot ${slot} is not in 0..16383`);
        return s.master;
      },
      async failover(replicaPort) {
        const s = shards.find((x) => x.replicas.includes(replicaPort));
        if (!s) throw new Error(`${replicaPort} is not a replica of this cluster`);
        await admin(replicaPort).call('CLUSTER', 'FAILOVER');
        // A manual failover turns the old master into a replica of the new one.
        s.replicas = [s.master, ...s.replicas.filter((r) => r !== replicaPort)];
        s.master = replicaPort;
        await waitSettled(shards, allPorts, admin, 15_000);
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

function nodeArgs(dir: string, port: number, bus: number): string[] {
  return [
    ...['--port', `${port}`, '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-node-timeout', '2000'],
    // An explicit bus port: the default port+10000 does not exist for a free port above 55535.
    ...['--cluster-port', `${bus}`, '--cluster-config-file', join(dir, `nodes-${port}.conf`)],
    // Replicas load their master's RDB through a file in the shared dir: one file name per node.
    ...['--dir', dir, '--dbfilename', `dump-${port}.rdb`, '--save', '', '--appendonly', 'no'],
    // A master waits 5 s before a full sync by default, for more replicas to come: none will. CLUSTER SLOTS
    // hides a replica until its offset is above 0, which takes a replication ping (every 10 s by default).
    ...['--repl-diskless-sync-delay', '0', '--repl-ping-replica-period', '1', '--maxmemory-policy', 'noeviction'],
  ];
}

/** Waits until every node reports cluster_state:ok and the slot map of `shards`, its replicas in sync. */
async function waitSettled(shards: Shard[], ports: number[], admin: (p: number) => Redis, ms: number): Promise<void> {
  const want = shards.map((s) => `${s.start}-${s.end}@${s.master}<${[...s.replicas].sort()}`).join(' ');
  let seen: string[] = [];
  const view = async (p: number) => {
    const [info, slots, repl] = await Promise.all([
      admin(p).cluster('INFO'),
      admin(p).cluster('SLOTS'),
      admin(p).info('replication'),
    ]);
    const map = slots
      .sort((a, b) => a[0] - b[0])
      .map(([start, end, m, ...rs]) => `${start}-${end}@${m?.[1]}<${rs.map((r) => r[1]).sort()}`);
    const synced = !repl.includes('role:slave') || repl.includes('master_link_status:up');
    return `${info.includes('cluster_state:ok') ? 'ok' : 'fail'} ${synced ? 'synced' : 'syncing'} ${map.join(' ')}`;
  };
  await waitFor(
    `cluster_state:ok and slot map ${want} on every node`,
    async () => {
      seen = await Promise.all(ports.map(view));
      return seen.every((v) => v === `ok synced ${want}`);
    },
    ms,
    () => `last seen:\n${seen.map((v, i) => `${ports[i]}: ${v}`).join('\n')}`,
  );
}
