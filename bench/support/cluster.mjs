// A Redis Cluster of the bench's own (3 masters by default, no replicas) on free loopback ports, for the cluster
// figures (BENCH_REDIS=both). It uses the dev stack's starter, scripts/local-redis-cluster.mjs, then turns the
// append-only file off on every node (the single Redis of the benchmarks runs without persistence too, and an
// fsync a second would be measured as the cluster's cost). Should that starter be missing or fail, a minimal one
// here does the same from redis-server processes (`--cluster-enabled yes`, an explicit `--cluster-port`).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { info, log, mastersOf, ROOT, runDir, sleep, track } from '../lib.mjs';

const require = createRequire(join(ROOT, 'package.json'));

const portFree = (port) =>
  new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });

/** A base port p with p..p+n-1 and p+100..p+100+n-1 (the starter's bus ports) all free. */
async function freeBase(n) {
  for (let tries = 0; tries < 200; tries++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const ports = Array.from({ length: n }, (_, i) => [base + i, base + 100 + i]).flat();
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error('no free port range for a cluster');
}

/**
 * Starts the cluster; resolves once every node answers cluster_state:ok. Returns
 * `{ nodes: [{host, port}], nodesEnv, shards, pids, starter }`; everything is stopped by lib's stopAll.
 */
export async function startCluster({ masters = 3 } = {}) {
  const dir = join(runDir(), 'cluster');
  mkdirSync(dir, { recursive: true });
  let nodesEnv = null;
  let starter = 'scripts/local-redis-cluster.mjs';
  const script = join(ROOT, 'scripts', 'local-redis-cluster.mjs');
  // The dev starter runs in a process of its own (its nodes write their logs to its stdout, which must not
  // mix with a benchmark's JSON); its command line starts 3 masters.
  if (existsSync(script) && masters === 3) {
    try {
      nodesEnv = await runDevStarter(script, dir, await freeBase(masters));
    } catch (e) {
      log(`scripts/local-redis-cluster.mjs did not start a cluster (${e.message}); using bench/support/cluster.mjs`);
    }
  }
  if (!nodesEnv) {
    starter = 'bench/support/cluster.mjs';
    const own = await startOwnCluster(join(dir, 'own'), masters);
    nodesEnv = own.nodesEnv;
    for (const c of own.children) track(`redis-cluster-node:${c.pid}`, () => killChild(c), c);
  }
  const nodes = nodesEnv.split(',').map((hp) => ({ host: '127.0.0.1', port: Number(hp.split(':')[1]) }));
  const { Redis } = require('ioredis');
  const pids = [];
  for (const n of nodes) {
    const c = new Redis({ port: n.port, maxRetriesPerRequest: 1 });
    c.on('error', () => {});
    // as the benchmarks' single Redis: AOF with fsync every second, no RDB snapshots
    await c.config('SET', 'appendonly', 'yes');
    await c.config('SET', 'appendfsync', 'everysec');
    await c.config('SET', 'save', '');
    await c.config('SET', 'maxmemory-policy', 'noeviction');
    const pid = Number(/process_id:(\d+)/.exec(await c.info('server'))?.[1]);
    pids.push(pid);
    c.disconnect();
    // whatever happens to the starter, its nodes go with this run
    track(`redis-cluster-node:${pid}`, async () => killPid(pid), null);
  }
  return { nodes, nodesEnv, shards: masters, pids, starter };
}

const killChild = async (c) => {
  if (c.exitCode === null && c.signalCode === null) {
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }
};

async function killPid(pid) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  for (let i = 0; i < 50; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(20);
  }
}

/** `node scripts/local-redis-cluster.mjs dir basePort`: resolves with its REDIS_CLUSTER_NODES line. */
async function runDevStarter(script, dir, basePort) {
  const logFile = join(runDir(), `local-redis-cluster-${basePort}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [script, dir, String(basePort)], {
    cwd: ROOT,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  track('local-redis-cluster', () => killChild(child), child);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const out = readFileSync(logFile, 'utf8');
    const m = /REDIS_CLUSTER_NODES=(\S+)/.exec(out);
    if (m) return m[1];
    if (child.exitCode !== null) throw new Error(`it exited (${child.exitCode}): ${out.slice(-500)}`);
    if (Date.now() > deadline) throw new Error(`no REDIS_CLUSTER_NODES line after 30 s: ${out.slice(-500)}`);
    await sleep(100);
  }
}

/** The fallback: node i on its own client port and bus port, slots split as redis-cli does. */
async function startOwnCluster(dir, masters) {
  mkdirSync(dir, { recursive: true });
  const base = await freeBase(masters);
  const nodes = Array.from({ length: masters }, (_, i) => ({ port: base + i, bus: base + 100 + i }));
  const children = nodes.map((n) =>
    spawn(
      'redis-server',
      [
        ...['--port', `${n.port}`, '--bind', '127.0.0.1', '--dir', dir, '--loglevel', 'warning'],
        ...['--cluster-enabled', 'yes', '--cluster-port', `${n.bus}`],
        ...['--cluster-config-file', join(dir, `nodes-${n.port}.conf`), '--dbfilename', `dump-${n.port}.rdb`],
        ...['--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction'],
      ],
      { stdio: 'ignore' },
    ),
  );
  const { Redis } = require('ioredis');
  const clients = nodes.map((n) => {
    const c = new Redis({ port: n.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    return c.on('error', () => {});
  });
  try {
    const until = async (what, check) => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        if (await check().catch(() => false)) return;
        if (children.some((c) => c.exitCode !== null)) throw new Error(`a redis-server exited waiting for ${what}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(100);
      }
    };
    await until('the nodes', async () => {
      for (const c of clients) if (c.status !== 'ready') await c.connect();
      return true;
    });
    await Promise.all(clients.map((c, i) => c.cluster('SET-CONFIG-EPOCH', i + 1)));
    await Promise.all(
      clients.map((c, i) => {
        const start = Math.round((i * 16384) / masters);
        const end = i === masters - 1 ? 16383 : Math.round(((i + 1) * 16384) / masters) - 1;
        return c.call('CLUSTER', 'ADDSLOTSRANGE', start, end);
      }),
    );
    for (const [i, c] of clients.entries()) {
      for (const other of nodes.slice(i + 1)) await c.call('CLUSTER', 'MEET', '127.0.0.1', other.port, other.bus);
    }
    await until('cluster_state:ok', async () => {
      const all = await Promise.all(clients.map((c) => c.cluster('INFO')));
      return all.every((x) => x.includes('cluster_state:ok') && x.includes(`cluster_known_nodes:${masters}\r`));
    });
  } catch (e) {
    for (const c of children) c.kill('SIGKILL');
    throw e;
  } finally {
    for (const c of clients) c.disconnect();
  }
  return { nodesEnv: nodes.map((n) => `127.0.0.1:${n.port}`).join(','), children };
}

/**
 * Per-master counters, to see how evenly a cluster was loaded: commands processed (INFO stats), CPU seconds
 * (INFO cpu, user + sys), keys. `delta(before, after)` gives each master's share of the commands and its CPU.
 */
export async function masterCounters(rc) {
  return Promise.all(
    mastersOf(rc).map(async (n) => {
      const [stats, cpu, ks] = await Promise.all([info(n, 'stats'), info(n, 'cpu'), info(n, 'keyspace')]);
      return {
        port: n.options.port,
        commands: Number(stats.total_commands_processed),
        cpuSeconds: Number(cpu.used_cpu_user) + Number(cpu.used_cpu_sys),
        keys: Number(/keys=(\d+)/.exec(ks.db0 ?? '')?.[1] ?? 0),
      };
    }),
  );
}

/** Each master's share of the commands and its CPU cores (over `seconds`) between two masterCounters. */
export function masterSpread(before, after, seconds) {
  const rows = after.map((a) => {
    const b = before.find((x) => x.port === a.port) ?? { commands: 0, cpuSeconds: 0 };
    return { port: a.port, commands: a.commands - b.commands, cpuSeconds: a.cpuSeconds - b.cpuSeconds, keys: a.keys };
  });
  const total = rows.reduce((s, r) => s + r.commands, 0) || 1;
  const out = rows.map((r) => ({
    port: r.port,
    commands: r.commands,
    commandShare: Math.round((r.commands / total) * 1000) / 1000,
    cpuCores: seconds > 0 ? Math.round((r.cpuSeconds / seconds) * 100) / 100 : null,
    keys: r.keys,
  }));
  const shares = out.map((r) => r.commandShare);
  return {
    masters: out,
    /** busiest master's commands over the mean: 1 is perfectly even */
    maxOverMean: Math.round(Math.max(...shares) * out.length * 100) / 100,
  };
}
