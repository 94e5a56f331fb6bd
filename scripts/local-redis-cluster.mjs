// A local Redis Cluster for the dev stack (START_REDIS=cluster): `masters` masters on fixed ports, data kept
// under `dir` (one folder per node, append-only file on), so a restart finds its keys and its cluster again.
//   node scripts/local-redis-cluster.mjs [dir=.data/redis-cluster] [basePort=7000]
// runs it in the foreground, prints REDIS_CLUSTER_NODES=... and stops the nodes on Ctrl-C or SIGTERM.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';

/**
 * Starts node i on basePort+i with its cluster bus on basePort+100+i, creates the cluster if the nodes have
 * never met (first start, or a first start that was interrupted), and resolves once every node answers
 * cluster_state:ok. On failure the nodes it started are stopped.
 * @param {{ dir: string, basePort: number, masters?: number }} opts
 * @returns {Promise<{ nodesEnv: string, children: import('node:child_process').ChildProcess[] }>}
 */
export async function startLocalCluster({ dir, basePort, masters = 3 }) {
  const nodes = Array.from({ length: masters }, (_, i) => ({
    port: basePort + i,
    // Explicit: the default bus port (port+10000) is out of range above 55535 and may be taken anyway.
    bus: basePort + 100 + i,
    dir: join(resolve(dir), String(basePort + i)),
  }));
  const children = nodes.map((n) => {
    mkdirSync(n.dir, { recursive: true });
    return spawn(
      'redis-server',
      [
        ...['--port', `${n.port}`, '--bind', '127.0.0.1', '--dir', n.dir, '--loglevel', 'warning'],
        ...[
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          `${n.bus}`,
          '--cluster-config-file',
          join(n.dir, 'nodes.conf'),
        ],
        ...['--cluster-node-timeout', '5000', '--appendonly', 'yes', '--save', '', '--maxmemory-policy', 'noeviction'],
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
  });
  // Connected by hand while a node starts (see waitUp); a refused connection is a retry, not an event to log.
  const clients = nodes.map((n) => {
    const c = new Redis({ port: n.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    return c.on('error', () => {});
  });
  try {
    await Promise.all(nodes.map((n, i) => waitUp(n.port, children[i], clients[i])));
    const infos = await Promise.all(clients.map((c) => c.cluster('INFO')));
    // A node that knows no peer and serves no slot was never part of a cluster: nodes.conf alone does not
    // tell, since redis-server writes it at first start, before any cluster is created.
    const fresh = infos.map((i) => i.includes('cluster_known_nodes:1\r') && i.includes('cluster_slots_assigned:0'));
    if (fresh.every(Boolean)) await create(nodes, clients);
    else if (fresh.some(Boolean)) {
      throw new Error(`some nodes under ${dir} belong to a cluster and some do not: remove ${dir} to start over`);
    }
    await until('cluster_state:ok on every node', 20_000, async () => {
      const all = await Promise.all(clients.map((c) => c.cluster('INFO')));
      return all.every((i) => i.includes('cluster_state:ok') && i.includes(`cluster_known_nodes:${masters}\r`));
    });
  } catch (e) {
    await stopNodes(children);
    throw e;
  } finally {
    for (const c of clients) c.disconnect();
  }
  return { nodesEnv: nodes.map((n) => `127.0.0.1:${n.port}`).join(','), children };
}

/** Stops the nodes with SIGTERM (so each finishes its append-only file), resolving once all have exited. */
export async function stopNodes(children) {
  await Promise.all(
    children.map((child) => {
      if (child.exitCode !== null || child.signalCode !== null) return undefined;
      return new Promise((done) => {
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => done(clearTimeout(t)));
        child.kill('SIGTERM');
      });
    }),
  );
}

// Slots split as redis-cli does (0-5460, 5461-10922, 10923-16383 for three), every pair of nodes meets.
async function create(nodes, clients) {
  const n = nodes.length;
  await Promise.all(clients.map((c, i) => c.cluster('SET-CONFIG-EPOCH', i + 1)));
  await Promise.all(
    clients.map((c, i) => {
      const start = Math.round((i * 16384) / n);
      const end = i === n - 1 ? 16383 : Math.round(((i + 1) * 16384) / n) - 1;
      return c.call('CLUSTER', 'ADDSLOTSRANGE', start, end);
    }),
  );
  for (const [i, c] of clients.entries()) {
    for (const other of nodes.slice(i + 1)) await c.call('CLUSTER', 'MEET', '127.0.0.1', other.port, other.bus);
  }
}

async function waitUp(port, child, client) {
  let exited;
  child.once('error', (e) => {
    exited = Object.assign(new Error(`cannot run redis-server (${e.message}): install it`), { fatal: true });
  });
  child.once('exit', (code, signal) => {
    const why = `redis-server on ${port} exited (${signal ?? code}) before answering; is the port taken?`;
    exited = Object.assign(new Error(why), { fatal: true });
  });
  await until(`redis-server on ${port}`, 10_000, async () => {
    if (exited) throw exited;
    if (client.status === 'wait' || client.status === 'end') await client.connect();
    // Our own process, not another server already on the port (ours then exits with "address in use").
    return (await client.info('server')).includes(`process_id:${child.pid}\r`);
  });
}

/** Polls `check` every 100 ms; its errors mean "not yet" unless marked fatal. */
async function until(what, ms, check) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      if (e.fatal) throw e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const [dir = '.data/redis-cluster', basePort = '7000'] = process.argv.slice(2);
  const started = Date.now();
  const { nodesEnv, children } = await startLocalCluster({ dir, basePort: Number(basePort) });
  console.log(`REDIS_CLUSTER_NODES=${nodesEnv}`);
  console.error(`[redis-cluster] ready in ${Date.now() - started} ms, data in ${resolve(dir)}; Ctrl-C stops it`);
  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    await stopNodes(children);
    process.exit(code);
  };
  for (const child of children) {
    child.once('exit', (code, signal) => {
      if (!stopping) console.error(`[redis-cluster] a node exited (${signal ?? code}); stopping the others`);
      void stop(1);
    });
  }
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
}
