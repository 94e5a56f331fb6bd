// POST /v1/otp/send on the real API process (real Redis, BullMQ queue, no worker) against a bare Fastify route
// that parses the same JSON and answers 202 with a similar JSON, in the same run, runs alternated.
// Run alone: node bench/api-send.bench.mjs   (see bench/README.md for the knobs)
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  BENCH_KEY,
  benchTargets,
  cannon,
  countKeys,
  envInt,
  freePort,
  gatewayEnv,
  gatewayLayout,
  gatewayPackages,
  isMain,
  log,
  many,
  median,
  pacedLoad,
  phoneCounter,
  RESULTS_DIR,
  ratio,
  redisClient,
  round,
  runBenchmark,
  scanKeys,
  sleep,
  startApp,
  startBareFastify,
  startRedis,
  waitForHttp,
} from './lib.mjs';
import { masterCounters, masterSpread, startCluster } from './support/cluster.mjs';
import { topFunctions } from './support/cpuprofile-top.mjs';

/** The gateway must keep at least this share of the bare route's throughput (see README). */
export const MIN_THROUGHPUT_RATIO = 0.08;
/** Issue 12's target, reported: p99 at most 10 ms at a fixed 2,000 sends a second. */
export const TARGET_FIXED_RATE_P99_MS = 10;

export async function apiSendBench(
  {
    connections = envInt('BENCH_CONNECTIONS', 20),
    duration = envInt('BENCH_DURATION', 4),
    rounds = envInt('BENCH_ROUNDS', 5),
    fixedRate = envInt('BENCH_API_FIXED_RATE', 2000),
    warmup = envInt('BENCH_WARMUP', 2),
    cpuProf = process.env.BENCH_CPU_PROF === '1',
    targets = benchTargets(),
    masters = envInt('BENCH_CLUSTER_MASTERS', 3),
    /** A second gateway on one Redis with the abuse guards off: what the guards cost, in the same rounds. */
    guardsBaseline = process.env.BENCH_GUARDS_BASELINE !== '0',
  } = {},
  partial = {},
) {
  const profDir = join(RESULTS_DIR, 'prof');
  if (cpuProf) mkdirSync(profDir, { recursive: true });
  // one gateway per store: its own Redis (or cluster), its own API process; the idle one waits its turn
  const gateways = {};
  const gatewayTargets = [...targets, ...(guardsBaseline ? ['noguards'] : [])];
  for (const target of gatewayTargets) {
    const store = target === 'cluster' ? await startCluster({ masters }) : await startRedis();
    const apiPort = await freePort();
    const env = {
      ...gatewayEnv({ redis: store, API_PORT: apiPort }),
      OTP_RESEND_COOLDOWN_SECONDS: '0',
      RATE_LIMIT_PER_KEY_PER_MINUTE: '10000000',
      RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
      // the guards run every check and count every send with limits no load reaches (lib's BENCH_GUARDS); the
      // baseline for their cost runs without them
      ...(target === 'noguards' ? { GUARD_ENABLED: 'false' } : {}),
    };
    const profiled = cpuProf && target === 'single';
    const api = startApp(
      'api',
      env,
      profiled ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-name=api-send.cpuprofile'] } : {},
    );
    gateways[target] = {
      target,
      store,
      api,
      url: `http://127.0.0.1:${apiPort}`,
      layout: await gatewayLayout(env),
      rc: redisClient(store),
      windows: [],
      masterLoad: [],
    };
  }
  const base = await startBareFastify();
  for (const g of Object.values(gateways)) await waitForHttp(`${g.url}/readyz`, g.api, 30_000);

  const nextPhone = phoneCounter();
  const load = async (side, seconds) => {
    const g = gateways[side];
    const watch = g
      ? {
          server: g.api.child.pid,
          ...(g.store.pids
            ? Object.fromEntries(g.store.pids.map((pid, i) => [`redis${i}`, pid]))
            : { redis: g.store.pid }),
        }
      : { server: base.proc.child.pid };
    const t0 = performance.now();
    const m0 = g?.store.pids ? await masterCounters(g.rc) : null;
    const r = await cannon({
      url: g ? g.url : base.url,
      watch,
      connections,
      duration: seconds,
      requests: [
        {
          method: 'POST',
          path: '/v1/otp/send',
          headers: { authorization: `Bearer ${BENCH_KEY}`, 'content-type': 'application/json' },
          setupRequest: (req) => ({ ...req, body: JSON.stringify({ phoneNumber: nextPhone() }) }),
        },
      ],
    });
    if (g) g.windows.push([t0, performance.now()]);
    if (m0) r.masters = masterSpread(m0, await masterCounters(g.rc), (performance.now() - t0) / 1000);
    return r;
  };

  const sides = ['baseline', ...gatewayTargets];
  const answers = Object.fromEntries(sides.map((s) => [s, {}]));
  const count = (side, r) => {
    for (const [k, v] of Object.entries(r.statusCodes)) answers[side][k] = (answers[side][k] ?? 0) + v;
    answers[side].errors = (answers[side].errors ?? 0) + r.errors;
  };

  log(
    `api-send: warm-up ${warmup}s each, then ${rounds} rounds x ${duration}s, ${connections} connections; gateway on ${targets.join(' and ')}`,
  );
  for (const side of sides) count(side, await load(side, warmup));
  const runs = Object.fromEntries(sides.map((s) => [s, []]));
  Object.assign(partial, { runs, answers });
  for (let i = 0; i < rounds; i++) {
    for (const side of sides) {
      const r = await load(side, duration);
      count(side, r);
      runs[side].push(r);
      log(
        `  round ${i + 1} ${side.padEnd(8)} ${r.rps} req/s  p50 ${r.latencyMs.p50} ms  p99 ${r.latencyMs.p99} ms  codes ${JSON.stringify(r.statusCodes)} errors ${r.errors}  cpu ${JSON.stringify(r.cpuCores)}${r.masters ? `  master shares ${r.masters.masters.map((m) => m.commandShare).join('/')}` : ''}`,
      );
    }
  }

  // A fixed rate, evenly paced (pacedLoad): the answers' latency when the API is not saturated. Baseline then
  // gateway (guards on), as many seconds as a round.
  const fixed = {};
  if (fixedRate > 0) {
    for (const side of ['baseline', 'single']) {
      const g = gateways[side];
      const codes = {};
      const r = await pacedLoad({
        url: g ? g.url : base.url,
        rate: fixedRate,
        seconds: duration,
        connections: 50,
        request: () => ({
          path: '/v1/otp/send',
          headers: { authorization: `Bearer ${BENCH_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ phoneNumber: nextPhone() }),
        }),
        onResponse: (_i, status) => {
          codes[status] = (codes[status] ?? 0) + 1;
        },
      });
      count(side, { statusCodes: codes, errors: r.errors });
      fixed[side] = { rate: fixedRate, seconds: duration, ...r.latencies, answers: codes, errors: r.errors };
      log(
        `  ${fixedRate}/s evenly paced ${side.padEnd(8)} p50 ${r.latencies.p50} ms  p99 ${r.latencies.p99} ms  max ${r.latencies.max} ms`,
      );
    }
  }

  const failures = [];
  const inFlightMax = connections * (rounds + 1);
  const results = {};
  for (const g of Object.values(gateways)) {
    results[g.target] = await checkGateway(g, answers[g.target], inFlightMax, failures);
  }
  let profile = null;
  if (cpuProf) {
    const exitedAt = results.single.exitedAt;
    const file = readdirSync(profDir).find((f) => f === 'api-send.cpuprofile');
    // only the samples taken while the gateway was under load (not start-up, not the other sides' turns)
    const w = gateways.single.windows.slice(1).map(([a, b]) => [exitedAt - a, exitedAt - b]);
    profile = file
      ? {
          file: `bench/results/prof/${file}`,
          windowsMsBeforeEnd: w.map((x) => x.map(Math.round)),
          ...topFunctions(join(profDir, file), 25, w),
        }
      : { error: 'no profile written' };
  }

  const summarize = (side) => ({
    rps: median(runs[side].map((r) => r.rps)),
    p50: median(runs[side].map((r) => r.latencyMs.p50)),
    p99: median(runs[side].map((r) => r.latencyMs.p99)),
  });
  const summary = { baseline: summarize('baseline'), gateway: summarize('single') };
  const ratiosOf = (side, sum) => ({
    throughput: round(sum.rps / summary.baseline.rps),
    /** the same from each round's pair (baseline then gateway, seconds apart): less exposed to drifting load */
    throughputPairedMedian: round(median(runs[side].map((g, i) => g.rps / runs.baseline[i].rps))),
    p50Latency: ratio(sum.p50, summary.baseline.p50),
    p99Latency: ratio(sum.p99, summary.baseline.p99),
  });
  const ratios = ratiosOf('single', summary.gateway);

  const non2xx = (side) =>
    Object.entries(answers[side])
      .filter(([k]) => k !== '202' && k !== 'errors')
      .reduce((s, [, v]) => s + v, 0);
  for (const side of gatewayTargets) {
    const name =
      side === 'single' ? 'gateway' : side === 'noguards' ? 'gateway without guards' : `gateway on the cluster`;
    if (non2xx(side) > 0) failures.push(`${name} answered ${non2xx(side)} non-202: ${JSON.stringify(answers[side])}`);
    if (answers[side].errors > 0) failures.push(`${name}: ${answers[side].errors} connection errors or timeouts`);
  }
  if (non2xx('baseline') > 0 || answers.baseline.errors > 0)
    failures.push(`baseline misbehaved: ${JSON.stringify(answers.baseline)}`);
  if (!(ratios.throughput >= MIN_THROUGHPUT_RATIO))
    failures.push(`throughput ratio ${ratios.throughput} < ${MIN_THROUGHPUT_RATIO}`);

  /** The abuse guards' cost: the gateway (guards on) against the same gateway with GUARD_ENABLED=false. */
  let guards = null;
  if (gateways.noguards) {
    const off = summarize('noguards');
    guards = {
      summaryWithout: off,
      throughputWithOverWithout: round(summary.gateway.rps / off.rps),
      throughputPairedMedian: round(median(runs.single.map((g, i) => g.rps / runs.noguards[i].rps))),
      p50LatencyWithOverWithout: ratio(summary.gateway.p50, off.p50),
      p99LatencyWithOverWithout: ratio(summary.gateway.p99, off.p99),
      ratioToBaselineWithout: round(off.rps / summary.baseline.rps),
      checks: results.noguards,
      answers: answers.noguards,
    };
  }

  let cluster = null;
  if (gateways.cluster) {
    const sum = summarize('cluster');
    const loads = runs.cluster.map((r) => r.masters).filter(Boolean);
    cluster = {
      masters,
      nodes: gateways.cluster.store.nodesEnv,
      starter: gateways.cluster.store.starter,
      sendQueueShards: gateways.cluster.layout.queues.length,
      summary: sum,
      /** against the same baseline as the single Redis's figures, in the same rounds */
      ratios: { ...ratiosOf('cluster', sum), clusterOverSingle: round(sum.rps / summary.gateway.rps) },
      masterLoad: {
        /** per master, medians over the rounds: share of the commands, CPU cores busy */
        perMaster: loads[0].masters.map((m, i) => ({
          port: m.port,
          commandShare: median(loads.map((l) => l.masters[i].commandShare)),
          cpuCores: median(loads.map((l) => l.masters[i].cpuCores)),
          keysAtEnd: loads.at(-1).masters[i].keys,
        })),
        maxOverMean: median(loads.map((l) => l.maxOverMean)),
      },
      checks: results.cluster,
    };
  }

  return {
    ok: failures.length === 0,
    failures,
    settings: {
      connections,
      durationSeconds: duration,
      rounds,
      warmupSeconds: warmup,
      logLevel: process.env.BENCH_LOG_LEVEL || 'info',
      redis: targets,
    },
    summary,
    ratios,
    ...(fixed.single ? { fixedRate: { gateway: fixed.single, baseline: fixed.baseline } } : {}),
    threshold: { throughputRatioAtLeast: MIN_THROUGHPUT_RATIO, non202: 0 },
    target: { fixedRateP99MsAtMost: TARGET_FIXED_RATE_P99_MS, fixedRate },
    answers: { gateway: answers.single, baseline: answers.baseline, ...(cluster ? { cluster: answers.cluster } : {}) },
    checks: results.single,
    ...(cluster ? { cluster } : {}),
    ...(guards ? { guards } : {}),
    runs: { baseline: runs.baseline, gateway: runs.single, ...(cluster ? { cluster: runs.cluster } : {}) },
    ...(profile ? { profile } : {}),
  };
}

/**
 * After the runs: every 202 must have queued one job (no worker runs: they all wait), in the shard of its OTP.
 * Stops the gateway's API and counts the answers it logged.
 */
async function checkGateway(g, answers, inFlightMax, failures) {
  const { rc, layout } = g;
  const otpPattern = layout.ks.key('p*', 'o:*');
  // the requests autocannon left in flight are still being served: count once the numbers stop moving
  let queued = -1;
  let otps = -1;
  let perShard = [];
  for (let i = 0; i < 50; i++) {
    await sleep(200);
    const shardCounts = await Promise.all(layout.queues.map((q) => rc.llen(q.key('wait'))));
    const q = shardCounts.reduce((a, b) => a + b, 0);
    const o = await countKeys(rc, otpPattern);
    perShard = shardCounts;
    if (q === queued && o === otps) break;
    [queued, otps] = [q, o];
  }
  const accepted = answers['202'] ?? 0;
  // OTP records that have no send job: such an OTP would never be sent
  const orphans = queued === otps ? { count: 0, sample: [] } : await otpsWithoutJob(rc, layout, otpPattern);

  await g.api.stop();
  const exitedAt = performance.now();
  // the server's own view of its answers (including those autocannon cut off when a run ended)
  const served = {};
  for (const l of g.api.logs()) {
    if (l.msg === 'request completed' && l.res?.statusCode)
      served[l.res.statusCode] = (served[l.res.statusCode] ?? 0) + 1;
  }
  // autocannon stops at its deadline with up to `connections` requests in flight per load: those were served
  // (queued) but their answers not counted
  if (queued !== otps || queued < accepted || queued > accepted + inFlightMax) {
    failures.push(
      `${g.target}: ${accepted} answers 202 but ${queued} jobs queued and ${otps} OTP records (in flight at most ${inFlightMax}); ${orphans.count} OTPs without a job, e.g. ${JSON.stringify(orphans.sample)}; the API logged answers ${JSON.stringify(served)}`,
    );
  }
  return {
    accepted202: accepted,
    jobsQueued: queued,
    jobsQueuedPerShard: perShard,
    otpRecords: otps,
    otpsWithoutJob: orphans.count,
    answersLoggedByApi: served,
    exitedAt,
  };
}

async function otpsWithoutJob(rc, layout, otpPattern) {
  const found = [];
  await scanKeys(rc, otpPattern, async (batch) => {
    const ids = batch.map((k) => k.slice(k.lastIndexOf(':o:') + 3));
    const exists = await many(
      rc,
      ids.map((id) => ['exists', layout.queueOf(id).key(id)]),
    );
    ids.forEach((id, i) => {
      if (exists[i] === 0) found.push(id);
    });
  });
  const { OTP_FIELDS: F } = (await gatewayPackages()).store;
  const sample = [];
  for (const id of found.slice(0, 5)) {
    const [status, ds, created] = await rc.hmget(layout.otpKeys(id).otp, F.status, F.ds, F.created);
    sample.push({ id, status, ds, created });
  }
  return { count: found.length, sample };
}

if (isMain(import.meta.url)) await runBenchmark('api-send', (partial) => apiSendBench({}, partial));
