// Shared plumbing of the benchmarks: free ports, a private redis-server, the gateway's processes, load
// generation, cleanup and results. Plain Node ESM; imports nothing from test/ (that would drag vitest in).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BENCH_DIR = join(ROOT, 'bench');
export const RESULTS_DIR = join(BENCH_DIR, 'results');
const require = createRequire(join(ROOT, 'package.json'));

/** autocannon, from the root devDependencies. */
export const autocannon = require('autocannon');

/**
 * Open-loop load at a fixed rate, evenly paced: request i is due at start + i / rate, whatever the answers before
 * it (at most `connections` in flight; a request waiting for a connection counts that wait in its latency).
 * autocannon's `overallRate` is not that: each connection sends its share of a second back to back when the
 * second starts, so "500 a second" is a burst of 500 then silence, and a queue behind the server measures how
 * long a burst takes to drain.
 *
 * `request(i)` gives request i's `{ path, headers, body }`; `onResponse(i, status, body, latencyMs)` sees each
 * answer. Answers: `{ requests, errors, latencies: { p50, p99, max } }` (ms, from when each request was due).
 */
export async function pacedLoad({ url, rate, seconds, connections = 50, request, onResponse }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const total = Math.round(rate * seconds);
  const latencies = [];
  let errors = 0;
  let done = 0;
  let callbackError = null;
  const t0 = performance.now();
  const send = (i) =>
    new Promise((resolve) => {
      const due = t0 + (i * 1000) / rate;
      // a request sent early (the timer's 1 ms grain) counts from when it left, never from a later due time
      const from = Math.min(due, performance.now());
      const { path, headers, body } = request(i);
      let settled = false;
      const fail = () => {
        if (settled) return;
        settled = true;
        errors++;
        resolve();
      };
      const req = http.request(`${url}${path}`, { method: 'POST', agent, headers, timeout: 10_000 }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        // 'close' also comes when the answer is cut off (then without 'end')
        res.on('close', () => {
          if (!res.complete) return fail();
          if (settled) return;
          settled = true;
          const ms = performance.now() - from;
          latencies.push(ms);
          try {
            onResponse?.(i, res.statusCode, Buffer.concat(chunks).toString('utf8'), ms);
          } catch (err) {
            callbackError ??= err;
          }
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', fail);
      req.end(body);
    });
  const inFlight = [];
  for (let i = 0; i < total; i++) {
    const wait = t0 + (i * 1000) / rate - performance.now();
    if (wait > 1) await sleep(Math.floor(wait));
    inFlight.push(send(i).then(() => done++));
  }
  await Promise.all(inFlight);
  agent.destroy();
  if (callbackError) throw callbackError;
  latencies.sort((a, b) => a - b);
  const at = (p) =>
    latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]) : null;
  return { requests: total, answered: done - errors, errors, latencies: { p50: at(0.5), p99: at(0.99), max: at(1) } };
}

/** Same secrets as the test stack; none of them is real. */
export const BENCH_SECRET = 'bench-secret-0123456789abcdefghijklmnopqrstuvwxyz';
export const BENCH_KEY = 'bench-api-key-0123456789abcdef';
export const OCTOPUSH_TOKEN = 'octopush-webhook-token-0123456789';
export const SIM_TWILIO = { sid: 'ACsimulator00000000000000000000000', token: 'simulator0twilio0auth0token00000' };
export const SIM_OCTOPUSH = { key: 'simulator-octopush-api-key', login: 'simulator@example.com' };

/** Log level of the gateway's processes: production's default (info) unless BENCH_LOG_LEVEL says otherwise. */
export const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || 'info';

/** True when `importMetaUrl` is the script node was started with. */
export const isMain = (importMetaUrl) =>
  process.argv[1] !== undefined && importMetaUrl === pathToFileURL(process.argv[1]).href;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function log(...args) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${args.join(' ')}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// cleanup: everything started is registered and stopped at the end, on failure, and on SIGINT/SIGTERM

const resources = [];
let workDir = null;

/** A temporary directory for this run (logs, redis dir); removed at the end unless BENCH_KEEP_LOGS=1. */
export function runDir() {
  workDir ??= mkdtempSync(join(tmpdir(), 'otp-bench-'));
  return workDir;
}

/** Registers something this run started, so that stopAll (and an exit) stops it. */
export function track(name, stop, child) {
  const r = { name, stop, child };
  resources.push(r);
  return r;
}

/** Stops everything still running, newest first. Safe to call more than once. */
export async function stopAll() {
  while (resources.length > 0) {
    const r = resources.pop();
    try {
      await r.stop();
    } catch (e) {
      log(`could not stop ${r.name}: ${e.message}`);
    }
  }
  if (workDir && process.env.BENCH_KEEP_LOGS !== '1') {
    rmSync(workDir, { recursive: true, force: true });
    workDir = null;
  }
}

// last resort: a synchronous kill of every child we started when the process goes away
process.on('exit', () => {
  for (const r of resources) {
    try {
      if (r.child && r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    } catch {}
  }
  if (workDir && process.env.BENCH_KEEP_LOGS !== '1') rmSync(workDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    log(`${sig}: stopping everything`);
    stopAll().finally(() => process.exit(130));
  });
}

/**
 * Runs `main` (which returns a result object with `ok`), stops everything whatever happens, writes the result
 * where BENCH_RESULT_FILE says (run.mjs) or bench/results/<name>.json, prints it, and sets the exit code.
 */
export async function runBenchmark(name, main) {
  const started = Date.now();
  let result;
  // what the benchmark had measured before a failure, so that a crash still reports it
  const partial = {};
  try {
    result = await main(partial);
  } catch (e) {
    result = { ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e), partial };
  } finally {
    await stopAll();
  }
  result = {
    name,
    ...result,
    startedAt: new Date(started).toISOString(),
    wallSeconds: round((Date.now() - started) / 1000, 1),
  };
  const file = process.env.BENCH_RESULT_FILE || join(RESULTS_DIR, `${name}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  if (!process.env.BENCH_RESULT_FILE) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    log(`written ${file}`);
  }
  if (result.error) log(`FAILED: ${result.error}`);
  else if (!result.ok) log(`FAILED: ${(result.failures ?? []).join('; ')}`);
  process.exitCode = result.ok ? 0 : 1;
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// ports, redis, processes

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * A redis-server of our own on a free loopback port, persisting as production should (AOF, fsync every second;
 * no RDB snapshots): the gateway refuses a Redis without AOF in production, and the benchmarks measure that cost.
 */
export async function startRedis() {
  const port = await freePort();
  const dir = join(runDir(), `redis-${port}`);
  mkdirSync(dir, { recursive: true });
  const bin = existsSync('/usr/bin/redis-server') ? '/usr/bin/redis-server' : 'redis-server';
  const child = spawn(
    bin,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--maxmemory-policy',
      'noeviction',
      '--loglevel',
      'warning',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  };
  track(`redis-server:${port}`, stop, child);
  const url = `redis://127.0.0.1:${port}`;
  const { Redis } = require('ioredis');
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}):\n${out}`);
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    try {
      await probe.connect();
      if ((await probe.ping()) === 'PONG') {
        probe.disconnect();
        break;
      }
    } catch {}
    probe.disconnect();
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${port}:\n${out}`);
    await sleep(50);
  }
  return { url, port, pid: child.pid };
}

/**
 * An ioredis client for the bench's own checks and seeding: `url` (one Redis) or a store from startRedis or
 * startCluster (support/cluster.mjs): a `Cluster` client then, on which the helpers below work per master.
 */
export function redisClient(target) {
  const { Redis, Cluster } = require('ioredis');
  let r;
  if (typeof target === 'string') r = new Redis(target, { maxRetriesPerRequest: null });
  else if (target.nodes) {
    r = new Cluster(target.nodes, { redisOptions: { maxRetriesPerRequest: null }, scaleReads: 'master' });
  } else r = new Redis(target.url, { maxRetriesPerRequest: null });
  r.on('error', () => {});
  track(`redis-client`, async () => r.quit().catch(() => r.disconnect()));
  return r;
}

/** The servers that hold keys: a cluster's masters, or the one server. */
export const mastersOf = (rc) => (typeof rc.nodes === 'function' && rc.isCluster ? rc.nodes('master') : [rc]);

/** FLUSHDB on every master. */
export async function flushAll(rc) {
  if (rc.isCluster) await waitClusterReady(rc);
  await Promise.all(mastersOf(rc).map((n) => n.flushdb()));
}

/** A Cluster client knows its masters once it is ready. */
export async function waitClusterReady(rc) {
  if (rc.status === 'ready') return;
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('cluster client not ready after 10 s')), 10_000);
    rc.once('ready', () => resolve(clearTimeout(t)));
  });
}

/** Calls `onBatch(keys, node)` for every key matching `pattern`, on every master. */
export async function scanKeys(rc, pattern, onBatch) {
  if (rc.isCluster) await waitClusterReady(rc);
  for (const node of mastersOf(rc)) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
      cursor = next;
      if (batch.length > 0) await onBatch(batch, node);
    } while (cursor !== '0');
  }
}

export async function countKeys(rc, pattern) {
  let n = 0;
  await scanKeys(rc, pattern, (b) => {
    n += b.length;
  });
  return n;
}

/**
 * Runs commands (`[name, ...args]`, the first argument a key) and returns their replies in order: pipelined on
 * one Redis; on a cluster concurrently, in chunks (a pipeline there must stay within one node).
 */
export async function many(rc, cmds, chunk = 2000) {
  const out = [];
  for (let i = 0; i < cmds.length; i += chunk) {
    const part = cmds.slice(i, i + chunk);
    if (rc.isCluster) out.push(...(await Promise.all(part.map(([c, ...a]) => rc.call(c, ...a)))));
    else {
      const p = rc.pipeline();
      for (const [c, ...a] of part) p.call(c, ...a);
      for (const [err, v] of await p.exec()) {
        if (err) throw err;
        out.push(v);
      }
    }
  }
  return out;
}

/** `INFO <section>` of one server as an object. */
export async function info(node, section) {
  const text = await node.info(section);
  return Object.fromEntries(
    text
      .split('\r\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// the gateway's own packages (their builds): key names, queue names and job options come from them, so that the
// benchmarks never spell a key the store owns

let pkgs = null;
export async function gatewayPackages() {
  pkgs ??= {
    core: await import(pathToFileURL(join(ROOT, 'packages', 'core', 'dist', 'index.js')).href),
    store: await import(pathToFileURL(join(ROOT, 'packages', 'store', 'dist', 'index.js')).href),
  };
  return pkgs;
}

/**
 * What the gateway's processes make of `env` (their own loadConfig), and the key space and send queue shards
 * they use: `queues[n]` is `{ name, prefix, key(rest) }` with BullMQ's key `prefix:name:rest`.
 */
export async function gatewayLayout(env) {
  const { core, store } = await gatewayPackages();
  const config = core.loadConfig(env, 'worker');
  const ks = store.createKeyspace(config.redis.keyPrefix);
  const shards = config.queues.sendShards;
  const queues = Array.from({ length: shards }, (_, n) => {
    const name = store.sendQueueName(n);
    const prefix = store.sendQueuePrefix(ks, n, shards);
    return { shard: n, name, prefix, key: (rest) => `${prefix}:${name}:${rest}` };
  });
  return {
    config,
    ks,
    queues,
    /** The shard queue of an OTP. */
    queueOf: (otpId) => queues[store.shardOf(otpId, shards)],
    otpKeys: (otpId) => store.otpKeys(ks, otpId),
    jobOptions: store.SEND_JOB_OPTIONS,
    /** The send queues as the API opens them (job options, event stream cap), on the bench's own client. */
    sendQueues: (rc) => store.createSendQueues(rc, ks, config.queues),
    /** How many finished jobs the real worker keeps (its removeOnComplete / removeOnFail settings). */
    workerKeepJobs: store.workerKeepJobs(config.queues),
  };
}

/**
 * Spawns `node [nodeArgs] script` with `env` (PATH only otherwise), stdout and stderr to a log file in the run
 * directory (a pipe read by this process would steal CPU from the measurement).
 */
export function spawnNode(name, script, env, { nodeArgs = [] } = {}) {
  if (!existsSync(script)) throw new Error(`${script} is missing: run \`pnpm -s build\` first`);
  const logFile = join(runDir(), `${name}-${Date.now()}-${Math.random().toString(36).slice(2, 6)}.log`);
  const fd = openSync(logFile, 'a');
  // BENCH_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`): node's options for every process a benchmark starts
  const extra = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...extra, ...nodeArgs, script], {
    cwd: ROOT,
    // an operator's .env in the checkout is not read: a benchmark sets what it measures
    env: { PATH: process.env.PATH ?? '', DOTENV_CONFIG_PATH: '/dev/null', ...env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const output = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const logs = () =>
    output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return {};
        }
      });
  const stop = async (signal = 'SIGTERM', graceMs = 15_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const exited = new Promise((r) => child.once('exit', (code) => r(code)));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  track(name, () => stop(), child);
  return {
    name,
    child,
    logFile,
    output,
    logs,
    stop,
    tail: (n = 30) => output().split('\n').slice(-n).join('\n'),
    async waitForLog(match, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const text = output();
        const hit = text
          .split('\n')
          .map((l) => {
            try {
              return l.startsWith('{') ? JSON.parse(l) : { raw: l };
            } catch {
              return { raw: l };
            }
          })
          .find(match);
        if (hit) return hit;
        if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}):\n${text.slice(-4000)}`);
        if (Date.now() > deadline)
          throw new Error(`${name}: no expected log line within ${timeoutMs} ms:\n${text.slice(-4000)}`);
        await sleep(50);
      }
    },
  };
}

/** Starts one of the gateway's processes from its build (apps/<app>/dist/main.js). */
export function startApp(app, env, opts) {
  return spawnNode(
    app,
    join(ROOT, 'apps', app, 'dist', 'main.js'),
    { NODE_ENV: 'production', LOG_LEVEL, ...env },
    opts,
  );
}

/** Waits until `url` answers 200. */
export async function waitForHttp(url, proc, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {}
    if (proc && proc.child.exitCode !== null)
      throw new Error(`${proc.name} exited (${proc.child.exitCode}):\n${proc.tail(40)}`);
    if (Date.now() > deadline)
      throw new Error(`${url} did not answer within ${timeoutMs} ms${proc ? `:\n${proc.tail(40)}` : ''}`);
    await sleep(100);
  }
}

/** The bare Fastify baseline server (bench/support/bare-fastify.mjs) on a free port. */
export async function startBareFastify(opts) {
  const port = await freePort();
  const proc = spawnNode('bare-fastify', join(BENCH_DIR, 'support', 'bare-fastify.mjs'), { PORT: String(port) }, opts);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/healthz`, proc);
  return { proc, url, port };
}

/**
 * How the gateway's processes reach a store from startRedis (`REDIS_URL`) or startCluster (`REDIS_CLUSTER_NODES`
 * and as many send queue shards as masters, so that every master holds queue work).
 */
export function redisEnv(redis) {
  return redis.nodes
    ? { REDIS_CLUSTER_NODES: redis.nodesEnv, SEND_QUEUE_SHARDS: String(redis.shards ?? redis.nodes.length) }
    : { REDIS_URL: redis.url };
}

/**
 * The abuse guards as every bench runs them: every check made and every send counted, with limits no load here
 * reaches (the benches send thousands of unverified OTPs to consecutive numbers of one range, which is what the
 * guards exist to stop): their cost is measured, never their refusals.
 */
export const BENCH_GUARDS = {
  GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '10000000',
  GUARD_VELOCITY_COUNTRY_MAX_UNVERIFIED: '10000000',
  GUARD_CONVERSION_RANGE_MIN_SENDS: '10000000',
  GUARD_CONVERSION_COUNTRY_MIN_SENDS: '10000000',
  GUARD_DAILY_SMS_PER_COUNTRY: '*=1000000000',
  GUARD_DAILY_SMS_PER_KEY: '*=1000000000',
};

/** The env every gateway process of a bench gets (the test stack's approach: simulator credentials, loopback). */
export function gatewayEnv({ redis, simUrl = 'http://127.0.0.1:9', ...ports }) {
  return {
    ...redisEnv(redis),
    OTP_SECRET: BENCH_SECRET,
    API_KEYS: `bench:${BENCH_KEY}`,
    HOST: '127.0.0.1',
    // production refuses to start without it; the bench's numbers are French
    OTP_ALLOWED_COUNTRIES: 'FR',
    ...BENCH_GUARDS,
    SMS_PROVIDERS: 'twilio,octopush',
    TWILIO_ACCOUNT_SID: SIM_TWILIO.sid,
    TWILIO_AUTH_TOKEN: SIM_TWILIO.token,
    TWILIO_FROM: '+15005550006',
    TWILIO_API_BASE_URL: simUrl,
    OCTOPUSH_API_KEY: SIM_OCTOPUSH.key,
    OCTOPUSH_API_LOGIN: SIM_OCTOPUSH.login,
    OCTOPUSH_API_BASE_URL: `${simUrl}/v1/public`,
    OCTOPUSH_WEBHOOK_TOKEN: OCTOPUSH_TOKEN,
    // the simulator and the callbacks app speak plain http on loopback (production refuses it otherwise)
    ALLOW_INSECURE_HTTP: 'true',
    ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// load and numbers

/** Waits until the send queues have no waiting or active job (so a next round does not share the CPU with them). */
export async function waitQueuesDrained(layout, rc, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const counts = await Promise.all(layout.queues.flatMap((q) => [rc.llen(q.key('wait')), rc.llen(q.key('active'))]));
    if (counts.every((n) => n === 0)) return;
    await sleep(500);
  }
}

/** Valid French mobile numbers (+3361xxxxxxx), unique per call: per-number limits never trigger. */
export function phoneCounter(start = 0) {
  let i = start;
  return () => {
    const n = i++;
    if (n >= 10_000_000) throw new Error('phone counter exhausted');
    return `+3361${String(n).padStart(7, '0')}`;
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc; null where /proc is not there. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return null;
  }
}

/** Busy and total CPU seconds of the whole machine so far, from /proc/stat; null where it is not there. */
export function machineCpu() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] ?? 0);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: (total - idle) / 100, total: total / 100 };
  } catch {
    return null;
  }
}

/** Runs autocannon and keeps what the benchmarks report; `watch` ({name: pid}) adds each process's CPU use. */
export async function cannon({ watch = {}, ...opts }) {
  const before = Object.fromEntries(Object.entries(watch).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const self0 = process.cpuUsage();
  const m0 = machineCpu();
  const t0 = performance.now();
  const r = await autocannon({ timeout: 10, ...opts });
  const wall = (performance.now() - t0) / 1000;
  const self = process.cpuUsage(self0);
  const cpu = Object.fromEntries(
    Object.entries(watch).map(([k, pid]) => {
      const after = cpuSeconds(pid);
      return [k, before[k] === null || after === null ? null : round((after - before[k]) / wall, 2)];
    }),
  );
  cpu.loadGenerator = round((self.user + self.system) / 1e6 / wall, 2);
  const m1 = machineCpu();
  cpu.wholeMachine = m0 && m1 ? round((m1.busy - m0.busy) / wall, 2) : null;
  const codes = Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([k, v]) => [k, v.count]));
  return {
    connections: opts.connections,
    durationSeconds: r.duration,
    requests: r.requests.total,
    rps: round(r.requests.total / r.duration, 1),
    latencyMs: {
      p50: r.latency.p50,
      p90: r.latency.p90,
      p99: r.latency.p99,
      max: r.latency.max,
      mean: round(r.latency.mean, 2),
    },
    statusCodes: codes,
    /** CPU cores each process kept busy on average during the load (1 = one core). */
    cpuCores: cpu,
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
  };
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** gateway / baseline, or null when the baseline is 0 (autocannon's latencies have 1 ms resolution). */
export const ratio = (x, base, d = 2) => (base > 0 ? round(x / base, d) : null);
export const round = (x, d = 3) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);
export const envInt = (name, def) => {
  const v = process.env[name];
  return v === undefined || v === '' ? def : Number.parseInt(v, 10);
};

/**
 * Which stores the gateway runs on in this run: `BENCH_REDIS=single` (default) or `both` (one Redis and a
 * 3-master cluster, BENCH_CLUSTER_MASTERS, side by side in the same run, against the same baseline).
 */
export function benchTargets() {
  const v = process.env.BENCH_REDIS || 'single';
  if (v === 'single') return ['single'];
  if (v === 'both') return ['single', 'cluster'];
  throw new Error(`BENCH_REDIS must be single or both (got ${v})`);
}

/** What machine the figures come from. */
export function machine() {
  const c = cpus();
  return {
    node: process.version,
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memGiB: round(totalmem() / 2 ** 30, 1),
    platform: `${process.platform}-${process.arch}`,
  };
}
