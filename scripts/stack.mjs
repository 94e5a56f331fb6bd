// Runs the whole gateway on one machine without Docker: local Redis, simulator, API, worker, callbacks,
// dashboard. Development defaults are generated once into .data/dev.env and reused; the environment wins.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createConnection } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalCluster, stopNodes } from './local-redis-cluster.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = join(root, '.data');
mkdirSync(dataDir, { recursive: true });

// .env in the working directory is read by every process too (dotenv); here it also decides the defaults, read by
// the same parser (inline comments, quotes, `export`), so both see the same values.
const dotenv = createRequire(join(root, 'apps', 'api', 'package.json'))('dotenv');
const envFile = join(root, '.env');
const fileEnv = existsSync(envFile) ? dotenv.parse(readFileSync(envFile)) : {};
// An empty value (a line of .env.example uncommented to fill in later) sets nothing: the default stands.
const given = Object.fromEntries(Object.entries({ ...fileEnv, ...process.env }).filter(([, v]) => v !== ''));

const devFile = join(dataDir, 'dev.env');
const dev = existsSync(devFile) ? JSON.parse(readFileSync(devFile, 'utf8')) : {};
dev.OTP_SECRET ??= randomBytes(32).toString('base64url');
dev.API_KEY ??= `dev_${randomBytes(18).toString('base64url')}`;
dev.DASHBOARD_PASSWORD ??= randomBytes(12).toString('base64url');
dev.OCTOPUSH_WEBHOOK_TOKEN ??= randomBytes(18).toString('base64url');
writeFileSync(devFile, JSON.stringify(dev, null, 2), { mode: 0o600 });

const host = given.HOST ?? '127.0.0.1';
const ports = {
  api: Number(given.API_PORT ?? 3000),
  webhooks: Number(given.WEBHOOKS_PORT ?? 3001),
  dashboard: Number(given.DASHBOARD_PORT ?? 3002),
  simulator: Number(given.SIMULATOR_PORT ?? 3003),
  redis: Number(given.LOCAL_REDIS_PORT ?? 6380),
  workerMetrics: Number(given.WORKER_METRICS_PORT ?? 3004),
};
const useSimulator = !given.TWILIO_ACCOUNT_SID && !given.OCTOPUSH_API_KEY;
const ownRedis = !given.REDIS_URL && !given.REDIS_CLUSTER_NODES && !given.REDIS_SENTINELS;
const startCluster = ownRedis && given.START_REDIS === 'cluster';
if (given.START_REDIS && !['single', 'cluster'].includes(given.START_REDIS)) {
  console.error(`[stack] START_REDIS must be single or cluster (got ${given.START_REDIS})`);
  process.exit(78);
}
// Real providers post their receipts to PUBLIC_WEBHOOK_BASE_URL: it must be an address they reach. A loopback
// default would make every receipt time out, and every code go out a second time through the next provider.
if (!useSimulator && !given.PUBLIC_WEBHOOK_BASE_URL) {
  console.error(
    `[stack] provider credentials are set: set PUBLIC_WEBHOOK_BASE_URL too, the public address where Twilio and Octopush reach the callbacks app (port ${ports.webhooks} here), e.g. https://otp-callbacks.example.com`,
  );
  process.exit(78);
}
const publicBase = given.PUBLIC_WEBHOOK_BASE_URL ?? `http://${host}:${ports.webhooks}`;
// With real credentials for one provider only, that provider alone (SMS_PROVIDERS, when set, wins).
const providersGiven = [given.TWILIO_ACCOUNT_SID && 'twilio', given.OCTOPUSH_API_KEY && 'octopush'].filter(Boolean);

const env = {
  NODE_ENV: 'development',
  // Readable logs in a terminal; JSON lines when the output goes to a file or a collector.
  LOG_PRETTY: process.stdout.isTTY ? 'true' : 'false',
  OTP_SECRET: dev.OTP_SECRET,
  API_KEYS: `dev:${dev.API_KEY}`,
  DASHBOARD_USER: 'admin',
  DASHBOARD_PASSWORD: dev.DASHBOARD_PASSWORD,
  OCTOPUSH_WEBHOOK_TOKEN: dev.OCTOPUSH_WEBHOOK_TOKEN,
  PUBLIC_WEBHOOK_BASE_URL: publicBase,
  WORKER_METRICS_PORT: String(ports.workerMetrics),
  // START_REDIS=cluster: a local 3-master Redis Cluster (ports LOCAL_REDIS_PORT.. +2) instead of one Redis.
  // A Redis of the user's (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS) comes in with `given`: no other mode
  // may be set beside it.
  ...(startCluster ? { SEND_QUEUE_SHARDS: '3' } : ownRedis ? { REDIS_URL: `redis://127.0.0.1:${ports.redis}` } : {}),
  ...(useSimulator ? {} : { SMS_PROVIDERS: providersGiven.join(',') }),
  ...(useSimulator
    ? {
        SMS_PROVIDERS: 'twilio,octopush',
        TWILIO_ACCOUNT_SID: 'ACsimulator00000000000000000000000',
        TWILIO_AUTH_TOKEN: 'simulator0twilio0auth0token00000',
        TWILIO_FROM: '+15005550006',
        TWILIO_API_BASE_URL: `http://127.0.0.1:${ports.simulator}`,
        OCTOPUSH_API_KEY: 'simulator-octopush-api-key',
        OCTOPUSH_API_LOGIN: 'simulator@example.com',
        OCTOPUSH_SENDER: 'OTP',
        OCTOPUSH_API_BASE_URL: `http://127.0.0.1:${ports.simulator}/v1/public`,
        SIM_TWILIO_ACCOUNT_SID: 'ACsimulator00000000000000000000000',
        SIM_TWILIO_AUTH_TOKEN: 'simulator0twilio0auth0token00000',
        SIM_OCTOPUSH_API_KEY: 'simulator-octopush-api-key',
        SIM_OCTOPUSH_API_LOGIN: 'simulator@example.com',
        SIM_OCTOPUSH_CALLBACK_URL: `${publicBase}/webhooks/octopush/delivery/${dev.OCTOPUSH_WEBHOOK_TOKEN}`,
        SIMULATOR_PORT: String(ports.simulator),
      }
    : {}),
  ...given,
};

const children = [];
let stopping = false;

function run(name, cmd, args, extraEnv = {}) {
  // nothing new once stopping began (an earlier process died during start-up): it would outlive stopAll's list
  if (stopping) return null;
  const child = spawn(cmd, args, { cwd: root, env: { ...env, ...extraEnv }, stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`[stack] ${name} exited (${signal ?? code}); stopping everything`);
      void stopAll(1);
    }
  });
  children.push({ name, child });
  return child;
}

function waitPort(port, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tryOnce = () => {
      const s = createConnection({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`port ${port} did not open`));
        else setTimeout(tryOnce, 100);
      });
    };
    tryOnce();
  });
}

async function stopAll(code = 0) {
  if (stopping) return;
  stopping = true;
  console.log('[stack] stopping...');
  const apps = children.filter((c) => c.name !== 'redis').reverse();
  await Promise.all(apps.map(({ child }) => stop(child)));
  const redis = children.find((c) => c.name === 'redis');
  if (redis) await stop(redis.child);
  if (clusterNodes.length > 0) await stopNodes(clusterNodes);
  console.log('[stack] stopped');
  process.exit(code);
}

function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 15000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));
// a closed terminal: without this node dies at once, and the Redis it started (which ignores SIGHUP) stays behind,
// holding its port against the next start
process.on('SIGHUP', () => void stopAll(0));
// ... and its output has nowhere to go then: a write error must not end this process before it stopped the rest
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

/** Whether something answers on a local port already. */
function portTaken(port) {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const clusterNodes = [];
if (startCluster) {
  const cluster = await startLocalCluster({ dir: join(dataDir, 'redis-cluster'), basePort: ports.redis, masters: 3 });
  clusterNodes.push(...cluster.children);
  for (const child of cluster.children) {
    child.on('exit', (code, signal) => {
      if (!stopping) {
        console.error(`[stack] a cluster node exited (${signal ?? code}); stopping everything`);
        void stopAll(1);
      }
    });
  }
  env.REDIS_CLUSTER_NODES = cluster.nodesEnv;
} else if (ownRedis) {
  if (await portTaken(ports.redis)) {
    console.error(
      `[stack] port ${ports.redis} is taken: a Redis left from an earlier run? Stop it (redis-cli -p ${ports.redis} shutdown), or set LOCAL_REDIS_PORT, or REDIS_URL to use a Redis of yours`,
    );
    process.exit(1);
  }
  const redisDir = join(dataDir, 'redis');
  mkdirSync(redisDir, { recursive: true });
  run('redis', 'redis-server', [
    '--port',
    String(ports.redis),
    '--bind',
    '127.0.0.1',
    '--dir',
    redisDir,
    '--appendonly',
    'yes',
    '--maxmemory-policy',
    'noeviction',
    '--save',
    '',
    '--loglevel',
    'warning',
  ]);
  await waitPort(ports.redis);
}

const apps = [
  ...(useSimulator ? [['simulator', ports.simulator]] : []),
  ['api', ports.api],
  ['worker', null],
  ['webhooks', ports.webhooks],
  ['dashboard', ports.dashboard],
];
const started = [];
for (const [name, port] of apps) {
  const entry = join(root, 'apps', name, 'dist', 'main.js');
  if (!existsSync(entry)) continue;
  if (!run(name, process.execPath, [entry])) break;
  if (port) {
    const open = await waitPort(port).then(
      () => true,
      (e) => {
        console.error(`[stack] ${name}: ${e.message}; stopping everything`);
        return false;
      },
    );
    // a process that runs without serving is no gateway to announce as running
    if (!open) await stopAll(1);
  }
  started.push(name);
}
// stopping already (a process died during start-up): stopAll exits; nothing to announce meanwhile
if (stopping) await new Promise(() => {});

const url = (p) => `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${p}`;
// the generated development credentials, unless the environment or .env set its own (then those are in force)
const apiKey = given.API_KEYS || given.TENANTS_FILE ? null : dev.API_KEY;
const dashboardLogin =
  given.DASHBOARD_USER || given.DASHBOARD_PASSWORD
    ? 'the DASHBOARD_USER and DASHBOARD_PASSWORD you set'
    : `user admin, password ${dev.DASHBOARD_PASSWORD}`;
const lines = [
  '',
  '  SMS OTP gateway is running (Ctrl-C stops everything)',
  '',
  `  API            ${url(ports.api)}   docs: ${url(ports.api)}/docs`,
  `  API key        ${apiKey ?? 'one of yours (API_KEYS or TENANTS_FILE)'}   (Authorization: Bearer <key>)`,
];
if (started.includes('webhooks')) lines.push(`  callbacks      ${url(ports.webhooks)}`);
if (started.includes('dashboard'))
  lines.push(`  dashboard      ${url(ports.dashboard)}/admin/queues   ${dashboardLogin}`);
if (started.includes('worker')) lines.push(`  worker metrics ${url(ports.workerMetrics)}/metrics`);
if (started.includes('simulator'))
  lines.push(`  simulator      ${url(ports.simulator)}/inbox   (no provider credentials: fake Twilio and Octopush)`);
// a password in the URL is not printed
const redisShown = env.REDIS_URL?.replace(/\/\/[^@/]*@/, '//***@');
lines.push(
  `  redis          ${redisShown ?? (env.REDIS_CLUSTER_NODES ? `cluster ${env.REDIS_CLUSTER_NODES}` : `sentinel ${env.REDIS_SENTINELS}`)}`,
);
lines.push('');
lines.push(`  try: curl -s -X POST ${url(ports.api)}/v1/otp/send -H 'Authorization: Bearer ${apiKey ?? '<key>'}' \\`);
lines.push(`         -H 'content-type: application/json' -d '{"phoneNumber":"+33612345678"}'`);
lines.push('');
console.log(lines.join('\n'));
