// Redis bytes per OTP, measured from outside on a fresh redis-server: N OTPs sent through the real API with no
// worker running (bytes per queued OTP), then delivered by the real worker process through the simulator, with
// the delivery reports coming back through the real callbacks process (bytes per OTP after delivery). Everything
// at its default settings, the OTP record retention included (OTP_RECORD_RETENTION_SECONDS, 24 h): nothing has
// expired when the second figure is taken. Also MEMORY USAGE summed by key family, to show where the bytes go.
// Run alone: node bench/memory.bench.mjs   (see bench/README.md for the knobs)
import {
  BENCH_KEY,
  cannon,
  envInt,
  freePort,
  gatewayEnv,
  gatewayLayout,
  gatewayPackages,
  info,
  isMain,
  log,
  many,
  OCTOPUSH_TOKEN,
  phoneCounter,
  redisClient,
  round,
  runBenchmark,
  scanKeys,
  sleep,
  startApp,
  startRedis,
  waitForHttp,
} from './lib.mjs';

/** The targets (1 KB = 1024 bytes, as Redis counts): at most 1.5 KB per queued OTP, 2 KB after delivery. */
export const MAX_QUEUED_BYTES = 1536;
export const MAX_DELIVERED_BYTES = 2048;
/**
 * How long every OTP may take to read `delivered`: past the receipt check (DELIVERY_TIMEOUT_SECONDS, 120 s), a
 * receipt lost on a loaded machine is followed by a resend through the other provider, which must be delivered too.
 */
const DELIVERY_WAIT_MS = 200_000;

export async function memoryBench({ n = envInt('BENCH_MEMORY_OTPS', 2000) } = {}, partial = {}) {
  const redis = await startRedis();
  const rc = redisClient(redis.url);
  const [apiPort, simPort, hookPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const simUrl = `http://127.0.0.1:${simPort}`;
  const hooksUrl = `http://127.0.0.1:${hookPort}`;
  // as test/support/stack.ts wires a stack with callbacks: Twilio's status callback URL comes from
  // PUBLIC_WEBHOOK_BASE_URL (signed by the simulator with the account's token), Octopush's from the simulator's env
  const env = {
    ...gatewayEnv({ redis, simUrl, API_PORT: apiPort, SIMULATOR_PORT: simPort, WEBHOOKS_PORT: hookPort }),
    PUBLIC_WEBHOOK_BASE_URL: hooksUrl,
    SIM_OCTOPUSH_CALLBACK_URL: `${hooksUrl}/webhooks/octopush/delivery/${OCTOPUSH_TOKEN}`,
  };
  const layout = await gatewayLayout(env);
  const { store } = await gatewayPackages();
  const F = store.OTP_FIELDS;

  const api = startApp('api', env);
  await waitForHttp(`${apiUrl}/readyz`, api);
  await sleep(500);
  const before = await memory(rc);
  log(`memory: fresh Redis with the API connected: used_memory ${before.used_memory} bytes; sending ${n} OTPs`);

  // 1. N OTPs through the real API, no worker: each one queued
  const nextPhone = phoneCounter();
  const ids = [];
  const sent = await cannon({
    url: apiUrl,
    connections: Math.min(20, n),
    amount: n,
    requests: [
      {
        method: 'POST',
        path: '/v1/otp/send',
        headers: { authorization: `Bearer ${BENCH_KEY}`, 'content-type': 'application/json' },
        setupRequest: (req) => ({ ...req, body: JSON.stringify({ phoneNumber: nextPhone() }) }),
        onResponse: (status, body) => {
          if (status === 202) ids.push(JSON.parse(body).id);
        },
      },
    ],
  });
  const failures = [];
  if (sent.statusCodes['202'] !== n || ids.length !== n)
    throw new Error(`sending ${n} OTPs: answers ${JSON.stringify(sent.statusCodes)}, errors ${sent.errors}`);
  const waiting = async () =>
    (await Promise.all(layout.queues.map((q) => rc.llen(q.key('wait'))))).reduce((a, b) => a + b, 0);
  if ((await waiting()) !== n) failures.push(`${await waiting()} jobs waiting after ${n} OTPs were accepted`);
  await sleep(500);
  const queued = await memory(rc);
  const queuedFamilies = await families(rc, layout.ks.prefix);
  partial.queued = { usedMemory: queued.used_memory, families: queuedFamilies };
  log(
    `memory: queued: +${queued.used_memory - before.used_memory} bytes = ${round((queued.used_memory - before.used_memory) / n, 1)} bytes per OTP`,
  );

  // 2. the simulator, the callbacks process, the real worker: every OTP goes out and reads `delivered`
  const sim = startApp('simulator', env);
  const hooks = startApp('webhooks', env);
  await Promise.all([waitForHttp(`${simUrl}/healthz`, sim), waitForHttp(`${hooksUrl}/healthz`, hooks)]);
  const worker = startApp('worker', env);
  await worker.waitForLog((l) => l.msg === 'worker started', 30_000);
  const t0 = Date.now();
  let statuses = {};
  for (;;) {
    const ds = await many(
      rc,
      ids.map((id) => ['hget', layout.otpKeys(id).otp, F.ds]),
    );
    statuses = {};
    for (const d of ds) statuses[d ?? 'missing'] = (statuses[d ?? 'missing'] ?? 0) + 1;
    if (statuses.delivered === n) break;
    if (Date.now() - t0 > DELIVERY_WAIT_MS) {
      failures.push(`after ${DELIVERY_WAIT_MS / 1000} s, delivery statuses ${JSON.stringify(statuses)}`);
      break;
    }
    await sleep(500);
  }
  const deliveredAfterSeconds = round((Date.now() - t0) / 1000, 1);
  // what a client sees: GET /v1/otp/{id} of every OTP
  const seen = await readThroughApi(apiUrl, ids);
  if (seen.delivered !== n) failures.push(`GET /v1/otp/{id}: delivery statuses ${JSON.stringify(seen)}`);
  log(`memory: ${n} OTPs delivered in ${deliveredAfterSeconds} s; the API reads ${JSON.stringify(seen)}`);
  const workerLog = worker.logs();
  const sentBy = {};
  for (const l of workerLog)
    if (l.msg === 'sms accepted by provider') sentBy[l.provider] = (sentBy[l.provider] ?? 0) + 1;
  // the worker, the callbacks process and the simulator stop: the same clients are connected as at `before`
  await worker.stop();
  await hooks.stop();
  await sim.stop();
  await sleep(500);
  const delivered = await memory(rc);
  const deliveredFamilies = await families(rc, layout.ks.prefix);
  await api.stop();

  const perOtp = (m) => round((m.used_memory - before.used_memory) / n, 1);
  const bytesPerOtp = { queued: perOtp(queued), delivered: perOtp(delivered) };
  const byFamily = (fam) =>
    Object.fromEntries(
      Object.entries(fam).map(([k, v]) => [
        k,
        {
          keys: v.keys,
          bytes: v.bytes,
          bytesPerOtp: round(v.bytes / n, 1),
          ...(v.examples.length > 0 ? { examples: v.examples } : {}),
          ...(v.members ? { members: v.members } : {}),
        },
      ]),
    );
  if (!(bytesPerOtp.queued <= MAX_QUEUED_BYTES))
    failures.push(`${bytesPerOtp.queued} bytes per queued OTP > ${MAX_QUEUED_BYTES}`);
  if (!(bytesPerOtp.delivered <= MAX_DELIVERED_BYTES))
    failures.push(`${bytesPerOtp.delivered} bytes per delivered OTP > ${MAX_DELIVERED_BYTES}`);
  log(`memory: delivered: ${bytesPerOtp.delivered} bytes per OTP; queued: ${bytesPerOtp.queued}`);

  // MEMORY STATS counters that grew, per OTP: where used_memory went besides the keys' own MEMORY USAGE
  const statsDelta = (m) =>
    Object.fromEntries(
      [
        'overhead.hashtable.main',
        'overhead.hashtable.expires',
        'db.0.overhead.hashtable.main',
        'db.0.overhead.hashtable.expires',
        'dataset.bytes',
        'overhead.total',
        'clients.normal',
        'lua.caches',
        'functions.caches',
      ]
        .filter((key) => typeof m.stats[key] === 'number' && typeof before.stats[key] === 'number')
        .map((key) => [key, round((m.stats[key] - before.stats[key]) / n, 1)]),
    );
  const memFields = (m) => ({
    usedMemory: m.used_memory,
    dataset: m.used_memory_dataset,
    overhead: m.used_memory_overhead,
    scripts: m.used_memory_scripts,
    clients: m.connected_clients,
    keys: m.keys,
  });
  return {
    ok: failures.length === 0,
    failures,
    settings: {
      otps: n,
      recordRetentionSeconds: layout.config.otp.recordRetentionSeconds,
      otpTtlSeconds: layout.config.otp.ttlSeconds,
      keepCompletedJobs: layout.config.queues.keepCompleted,
      deliveryTimeoutSeconds: layout.config.worker.deliveryTimeoutSeconds,
      providers: layout.config.providers.order,
      sendQueueShards: layout.config.queues.sendShards,
      redisVersion: before.redis_version,
      allocator: before.mem_allocator,
    },
    bytesPerOtp,
    threshold: { queuedBytesAtMost: MAX_QUEUED_BYTES, deliveredBytesAtMost: MAX_DELIVERED_BYTES },
    memory: { before: memFields(before), queued: memFields(queued), delivered: memFields(delivered) },
    /** MEMORY STATS counters, growth per OTP since `before` (bytes) */
    memoryStatsPerOtp: { queued: statsDelta(queued), delivered: statsDelta(delivered) },
    /** sum of the families' MEMORY USAGE per OTP, and what is left of used_memory's growth (dict tables, expires) */
    keysPerOtp: { queued: keyBytes(queuedFamilies, n), delivered: keyBytes(deliveredFamilies, n) },
    /**
     * The same figure without the costs that do not grow with the number of OTPs: BullMQ's events stream (capped at
     * its maxLenEvents entries per shard), the completed jobs kept (JOBS_KEEP_COMPLETED per shard) and the
     * scripts cache. Reported to read the figures at scale; the thresholds hold the whole figure.
     */
    bytesPerOtpWithoutFixedCosts: {
      queued: round(
        bytesPerOtp.queued -
          queuedFamilies.bullmqEvents.bytes / n -
          (queued.used_memory_scripts - before.used_memory_scripts) / n,
        1,
      ),
      delivered: round(
        bytesPerOtp.delivered -
          (deliveredFamilies.bullmqEvents.bytes + deliveredFamilies.bullmqJobs.bytes) / n -
          (delivered.used_memory_scripts - before.used_memory_scripts) / n,
        1,
      ),
    },
    /** MEMORY USAGE (SAMPLES 0) summed over each family's keys; bytesPerOtp = bytes / N */
    families: { queued: byFamily(queuedFamilies), delivered: byFamily(deliveredFamilies) },
    checks: {
      accepted202: ids.length,
      deliveryStatusInRedis: statuses,
      deliveryStatusThroughApi: seen,
      deliveredAfterSeconds,
      acceptedByProvider: sentBy,
    },
  };
}

/** INFO memory, server and keyspace of one Redis, numbers as numbers; and MEMORY STATS' top-level counters. */
async function memory(rc) {
  const [m, s, c, k, st] = await Promise.all([
    info(rc, 'memory'),
    info(rc, 'server'),
    info(rc, 'clients'),
    info(rc, 'keyspace'),
    rc.call('MEMORY', 'STATS'),
  ]);
  const stats = {};
  for (let i = 0; i + 1 < st.length; i += 2) if (typeof st[i + 1] === 'number') stats[st[i]] = st[i + 1];
  const db0 = st[st.indexOf('db.0') + 1];
  if (st.includes('db.0') && Array.isArray(db0))
    for (let i = 0; i + 1 < db0.length; i += 2) stats[`db.0.${db0[i]}`] = db0[i + 1];
  return {
    stats,
    used_memory: Number(m.used_memory),
    used_memory_dataset: Number(m.used_memory_dataset),
    used_memory_overhead: Number(m.used_memory_overhead),
    used_memory_scripts: Number(m.used_memory_scripts),
    mem_allocator: m.mem_allocator,
    redis_version: s.redis_version,
    connected_clients: Number(c.connected_clients),
    keys: Number(/keys=(\d+)/.exec(k.db0 ?? '')?.[1] ?? 0),
  };
}

/**
 * Every key, classified by what it holds, with MEMORY USAGE summed per family. The families follow the key space
 * (packages/store/src/keyspace.ts): `{p…}` an OTP partition (OTP records `o:`, number records `n:`, the due set),
 * `{m…}` the message index, `{q…}` a send queue shard (BullMQ: its job hashes, its events stream, the rest).
 */
async function families(rc, prefix) {
  const esc = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const rules = [
    ['otpRecords', new RegExp(`^${esc}:\\{p[0-9a-f]+\\}:o:`)],
    ['numberRecords', new RegExp(`^${esc}:\\{p[0-9a-f]+\\}:n:`)],
    ['dueSets', new RegExp(`^${esc}:\\{p[0-9a-f]+\\}:due$`)],
    ['messageIndex', new RegExp(`^${esc}:\\{m[0-9a-f]+\\}:`)],
    ['bullmqJobs', new RegExp(`^${esc}:\\{q[^}]*\\}:[^:]+:otp_[0-9a-f]+(-r\\d+)?$`)],
    ['bullmqEvents', new RegExp(`^${esc}:\\{q[^}]*\\}:[^:]+:events$`)],
    ['bullmqOther', new RegExp(`^${esc}:\\{q[^}]*\\}:`)],
    ['other', /./],
  ];
  const { DUE } = (await gatewayPackages()).store;
  const out = Object.fromEntries(rules.map(([name]) => [name, { keys: 0, bytes: 0, examples: [] }]));
  const dueMembers = {};
  await scanKeys(rc, '*', async (batch) => {
    const sizes = await many(
      rc,
      batch.map((k) => ['memory', 'usage', k, 'samples', '0']),
    );
    const dueKeys = batch.filter((k) => rules[2][1].test(k));
    const members = await many(
      rc,
      dueKeys.map((k) => ['zrange', k, '0', '-1']),
    );
    for (const m of members.flat()) {
      const kind = m.startsWith(DUE.receipt) ? 'receipt' : m.startsWith(DUE.unstarted) ? 'unstarted' : 'other';
      dueMembers[kind] = (dueMembers[kind] ?? 0) + 1;
    }
    batch.forEach((k, i) => {
      const [name] = rules.find(([, re]) => re.test(k));
      out[name].keys++;
      out[name].bytes += Number(sizes[i] ?? 0);
      if (name === 'other' || name === 'bullmqOther') if (out[name].examples.length < 12) out[name].examples.push(k);
    });
  });
  out.dueSets.members = dueMembers;
  return out;
}

function keyBytes(fam, n) {
  return round(Object.values(fam).reduce((s, v) => s + v.bytes, 0) / n, 1);
}

/**
 * GET /v1/otp/{id} of every OTP, 20 at a time: the delivery statuses a client reads. A 503 (the API's Redis
 * commands time out after 700 ms, which a loaded machine can make happen) is retried a few times, as a client
 * would; the retries are counted under `retried503`.
 */
async function readThroughApi(apiUrl, ids) {
  const counts = {};
  let retried = 0;
  const read = async (id) => {
    for (let attempt = 0; ; attempt++) {
      const r = await fetch(`${apiUrl}/v1/otp/${id}`, { headers: { authorization: `Bearer ${BENCH_KEY}` } });
      if (r.ok) return r.json();
      if (r.status !== 503 || attempt >= 5) return { deliveryStatus: `http ${r.status}` };
      retried++;
      await sleep(200);
    }
  };
  for (let i = 0; i < ids.length; i += 20) {
    const bodies = await Promise.all(ids.slice(i, i + 20).map(read));
    for (const b of bodies) counts[b.deliveryStatus] = (counts[b.deliveryStatus] ?? 0) + 1;
  }
  if (retried > 0) counts.retried503 = retried;
  return counts;
}

if (isMain(import.meta.url)) await runBenchmark('memory', (partial) => memoryBench({}, partial));
