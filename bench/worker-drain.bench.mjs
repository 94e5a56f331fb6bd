// How fast the send worker drains its queue, against a no-op BullMQ worker on the same Redis in the same run:
//  (a) no-op worker (bench/support/noop-worker.mjs, same concurrency and lock settings) draining N pre-added jobs;
//  (b) the real worker (apps/worker's startSendWorker, bench/support/instant-worker.mjs) with instant in-process
//      providers, draining N real send jobs created through the real API; (b)/(a) is held to at least 0.40;
//  (b') the real worker process (apps/worker/dist/main.js) sending over HTTP to the simulator answering at once:
//      reported, not held (it adds the providers' HTTP clients, axios under twilio and Octopush, and the simulator);
//  (c) the simulator's Twilio answering after 300 ms: throughput at WORKER_CONCURRENCY 10 vs 50.
// With BENCH_REDIS=both, (b) and (b') also run on a 3-master cluster (3 send queue shards), against the same (a).
// Run alone: node bench/worker-drain.bench.mjs   (see bench/README.md for the knobs)
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  BENCH_DIR,
  BENCH_KEY,
  benchTargets,
  cannon,
  cpuSeconds,
  envInt,
  flushAll,
  freePort,
  gatewayEnv,
  gatewayLayout,
  gatewayPackages,
  isMain,
  log,
  many,
  median,
  phoneCounter,
  RESULTS_DIR,
  redisClient,
  redisEnv,
  round,
  runBenchmark,
  sleep,
  spawnNode,
  startApp,
  startRedis,
  waitForHttp,
} from './lib.mjs';
import { masterCounters, masterSpread, startCluster } from './support/cluster.mjs';
import { topFunctions } from './support/cpuprofile-top.mjs';

/** The project's floor for (b)/(a). */
export const MIN_DRAIN_RATIO = 0.4;
/** (c): concurrency 50 must drain at least this many times faster than 10 with a 300 ms provider (ideal: 5). */
export const MIN_CONCURRENCY_SPEEDUP = 3;
/**
 * Completed jobs kept per queue during the drains (JOBS_KEEP_COMPLETED, production default 100): every job of a
 * run must still be there to be timed from its own timestamps. The store's default before issue 8 (10,000).
 */
const KEEP_COMPLETED = 10_000;

export async function workerDrainBench(
  {
    jobs = envInt('BENCH_DRAIN_JOBS', 5000),
    rounds = envInt('BENCH_DRAIN_ROUNDS', 3),
    concurrency = envInt('BENCH_WORKER_CONCURRENCY', 50),
    slowWaves = envInt('BENCH_SLOW_WAVES', 20),
    slowLatencyMs = envInt('BENCH_SLOW_LATENCY_MS', 300),
    drainTimeoutMs = envInt('BENCH_DRAIN_TIMEOUT_MS', 60_000),
    cpuProf = process.env.BENCH_CPU_PROF === '1',
    targets = benchTargets(),
    masters = envInt('BENCH_CLUSTER_MASTERS', 3),
  } = {},
  partial = {},
) {
  if (jobs > KEEP_COMPLETED) throw new Error(`BENCH_DRAIN_JOBS at most ${KEEP_COMPLETED}`);
  const profDir = join(RESULTS_DIR, 'prof');
  let profile = null;
  const simPort = await freePort();
  const simUrl = `http://127.0.0.1:${simPort}`;
  const sim = startApp('simulator', gatewayEnv({ redis: { url: 'redis://127.0.0.1:9' }, simUrl, SIMULATOR_PORT: simPort }));

  // one store per target (one Redis; a cluster), each with its own API process; one simulator for all
  const gateways = {};
  for (const target of targets) {
    const store = target === 'cluster' ? await startCluster({ masters }) : await startRedis();
    const apiPort = await freePort();
    const env = {
      ...gatewayEnv({ redis: store, simUrl, API_PORT: apiPort, SIMULATOR_PORT: simPort }),
      OTP_RESEND_COOLDOWN_SECONDS: '0',
      RATE_LIMIT_PER_KEY_PER_MINUTE: '10000000',
      RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
      PROVIDER_TIMEOUT_MS: '5000',
      JOBS_KEEP_COMPLETED: String(KEEP_COMPLETED),
      // which provider the real worker prefers (twilio first, as in production's usual order, unless told)
      SMS_PROVIDERS: process.env.BENCH_SMS_PROVIDERS || 'twilio,octopush',
    };
    gateways[target] = {
      target,
      store,
      env,
      apiUrl: `http://127.0.0.1:${apiPort}`,
      api: startApp('api', env),
      layout: await gatewayLayout(env),
      rc: redisClient(store),
    };
  }
  await waitForHttp(`${simUrl}/healthz`, sim);
  for (const g of Object.values(gateways)) await waitForHttp(`${g.apiUrl}/readyz`, g.api, 30_000);
  const single = gateways.single;
  const nextPhone = phoneCounter();

  const faults = async (settings) => {
    const r = await fetch(`${simUrl}/_sim/faults/twilio`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(settings),
    });
    if (!r.ok) throw new Error(`simulator faults: ${r.status} ${await r.text()}`);
  };

  const waiting = async (g) => {
    const counts = await Promise.all(g.layout.queues.map((q) => g.rc.llen(q.key('wait'))));
    return counts.reduce((a, b) => a + b, 0);
  };

  /** N real OTPs through the real API (no worker runs meanwhile): each queues one send job. */
  const createOtps = async (g, n) => {
    const r = await cannon({
      url: g.apiUrl,
      connections: Math.min(20, n),
      amount: n,
      requests: [
        {
          method: 'POST',
          path: '/v1/otp/send',
          headers: { authorization: `Bearer ${BENCH_KEY}`, 'content-type': 'application/json' },
          setupRequest: (req) => ({ ...req, body: JSON.stringify({ phoneNumber: nextPhone() }) }),
        },
      ],
    });
    const w = await waiting(g);
    if (r.statusCodes['202'] !== n || w !== n) {
      throw new Error(
        `creating ${n} OTPs through the API (${g.target}): answers ${JSON.stringify(r.statusCodes)}, errors ${r.errors}, ${w} jobs waiting`,
      );
    }
  };

  /**
   * N jobs as the API queues them (the real job options, data `{ otpId }`, job id = OTP id), added in bulk on one
   * Redis's single shard: for the no-op worker.
   */
  const addNoopJobs = async (n) => {
    const { Queue } = await import('bullmq');
    const q = single.layout.queues[0];
    const queue = new Queue(q.name, { connection: single.rc, prefix: q.prefix, defaultJobOptions: single.layout.jobOptions });
    for (let start = 0; start < n; start += 500) {
      const batch = [];
      for (let i = start; i < Math.min(n, start + 500); i++) {
        const otpId = `otp_${i.toString(16).padStart(32, '0')}`;
        batch.push({ name: 'send', data: { otpId }, opts: { jobId: otpId } });
      }
      await queue.addBulk(batch);
    }
    await queue.close();
  };

  /**
   * Starts a worker on `g`'s store, waits until `n` jobs have finished (completed or failed, on every shard) or
   * progress stops, stops it, and measures the drain from BullMQ's own job timestamps: first processedOn to last
   * finishedOn.
   */
  const drain = async (g, kind, n, workerEnv = {}, { profileAs = null } = {}) => {
    const { rc, layout, store } = g;
    if (profileAs) {
      mkdirSync(profDir, { recursive: true });
      rmSync(join(profDir, `${profileAs}.cpuprofile`), { force: true });
    }
    const nodeArgs = profileAs
      ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${profileAs}.cpuprofile`]
      : [];
    const wenv = { ...g.env, WORKER_CONCURRENCY: String(concurrency), ...workerEnv };
    const proc =
      kind === 'noop'
        ? spawnNode(
            'noop-worker',
            join(BENCH_DIR, 'support', 'noop-worker.mjs'),
            {
              ...redisEnv(store),
              QUEUE: layout.queues[0].name,
              QUEUE_PREFIX: layout.queues[0].prefix,
              WORKER_CONCURRENCY: wenv.WORKER_CONCURRENCY,
            },
            { nodeArgs },
          )
        : kind === 'instant'
          ? spawnNode('instant-worker', join(BENCH_DIR, 'support', 'instant-worker.mjs'), wenv, { nodeArgs })
          : startApp('worker', wenv, { nodeArgs });
    const redisPids = store.pids ?? [store.pid];
    const redisCpu = () => redisPids.reduce((s, pid) => s + (cpuSeconds(pid) ?? 0), 0);
    const cpu0 = { worker: null, simulator: cpuSeconds(sim.child.pid), redis: redisCpu() };
    const t0 = performance.now();
    await proc.waitForLog((l) => l.msg === 'worker started', 30_000);
    cpu0.worker = cpuSeconds(proc.child.pid);
    const m0 = store.pids ? await masterCounters(rc) : null;
    const tReady = performance.now();
    let done = 0;
    let last = -1;
    let lastChange = performance.now();
    let stalled = false;
    for (;;) {
      const counts = await Promise.all(
        layout.queues.flatMap((q) => [rc.zcard(q.key('completed')), rc.zcard(q.key('failed'))]),
      );
      done = counts.reduce((a, b) => a + b, 0);
      if (done >= n) break;
      if (done !== last) {
        last = done;
        lastChange = performance.now();
      }
      if (
        performance.now() - lastChange > 15_000 ||
        performance.now() - tReady > drainTimeoutMs ||
        proc.child.exitCode !== null
      ) {
        stalled = true;
        break;
      }
      await sleep(100);
    }
    const wallReady = (performance.now() - tReady) / 1000;
    const masterLoad = m0 ? masterSpread(m0, await masterCounters(rc), wallReady) : null;
    const cpu = {
      worker: cpu0.worker === null ? null : round((cpuSeconds(proc.child.pid) - cpu0.worker) / wallReady, 2),
      simulator: kind === 'real' ? round((cpuSeconds(sim.child.pid) - cpu0.simulator) / wallReady, 2) : undefined,
      redis: round((redisCpu() - cpu0.redis) / wallReady, 2),
    };
    const state = await queueState(g);
    const timing = await jobTiming(g);
    let outcome = null;
    if (kind !== 'noop') outcome = await otpOutcomes(g);
    const tail = proc.tail(15);
    const tDone = performance.now();
    await proc.stop();
    if (profileAs) {
      const before = performance.now() - tReady;
      const file = join(profDir, `${profileAs}.cpuprofile`);
      try {
        // only while draining: from the worker's start-up line to the last job
        const w = [[before, performance.now() - tDone]];
        profile = {
          file: `bench/results/prof/${profileAs}.cpuprofile`,
          windowsMsBeforeEnd: w.map((x) => x.map(Math.round)),
          ...topFunctions(file, 25, w),
        };
      } catch (e) {
        profile = { error: `no profile: ${e.message}` };
      }
    }
    const res = {
      kind,
      redis: g.target,
      jobs: n,
      finished: done,
      completed: state.completed,
      failed: state.failed,
      drainSeconds: timing ? round(timing.seconds, 3) : null,
      jobsPerSecond: timing ? round(timing.count / timing.seconds, 1) : null,
      startupSeconds: round((tReady - t0) / 1000, 2),
      cpuCoresWhileDraining: cpu,
      ...(masterLoad ? { masterLoad } : {}),
      ...(outcome ? { otps: outcome } : {}),
    };
    if (stalled || state.failed > 0) {
      res.problem = stalled
        ? `stopped after ${done}/${n} jobs finished (no progress or timeout)`
        : `${state.failed} jobs failed`;
      res.queue = state;
      res.failedReasons = await failedReasons(g);
      res.workerLogTail = tail;
    }
    return res;
  };

  const queueState = async ({ rc, layout }) => {
    const total = { wait: 0, active: 0, delayed: 0, completed: 0, failed: 0, prioritized: 0 };
    const perShard = [];
    for (const q of layout.queues) {
      const [wait, active, delayed, completed, failed, prioritized] = await Promise.all([
        rc.llen(q.key('wait')),
        rc.llen(q.key('active')),
        rc.zcard(q.key('delayed')),
        rc.zcard(q.key('completed')),
        rc.zcard(q.key('failed')),
        rc.zcard(q.key('prioritized')),
      ]);
      const s = { wait, active, delayed, completed, failed, prioritized };
      perShard.push(s);
      for (const k of Object.keys(total)) total[k] += s[k];
    }
    return layout.queues.length > 1 ? { ...total, perShard } : total;
  };
  const failedReasons = async ({ rc, layout }) => {
    const counts = {};
    for (const q of layout.queues) {
      const ids = await rc.zrange(q.key('failed'), 0, 199);
      for (const id of ids) {
        const reason = (await rc.hget(q.key(id), 'failedReason')) ?? '?';
        counts[reason] = (counts[reason] ?? 0) + 1;
      }
    }
    return counts;
  };
  const finishedIds = async ({ rc, layout }, which = ['completed', 'failed']) => {
    const out = [];
    for (const q of layout.queues)
      for (const set of which) for (const id of await rc.zrange(q.key(set), 0, -1)) out.push([q, id]);
    return out;
  };
  const jobTiming = async (g) => {
    const ids = await finishedIds(g);
    if (ids.length === 0) return null;
    const res = await many(
      g.rc,
      ids.map(([q, id]) => ['hmget', q.key(id), 'processedOn', 'finishedOn']),
    );
    let first = Number.POSITIVE_INFINITY;
    let lastAt = 0;
    for (const [processedOn, finishedOn] of res) {
      if (processedOn) first = Math.min(first, Number(processedOn));
      if (finishedOn) lastAt = Math.max(lastAt, Number(finishedOn));
    }
    return { count: ids.length, seconds: Math.max(0.001, (lastAt - first) / 1000) };
  };
  /** Delivery statuses of the OTPs the jobs belong to (job id = OTP id): all must read `sent`. */
  const otpOutcomes = async (g) => {
    const { OTP_FIELDS: F } = (await gatewayPackages()).store;
    const ids = await finishedIds(g, ['completed']);
    const res = await many(
      g.rc,
      ids.map(([, id]) => ['hmget', g.layout.otpKeys(id).otp, F.ds, F.provider]),
    );
    const ds = {};
    const provider = {};
    for (const [d, pr] of res) {
      ds[d ?? 'missing'] = (ds[d ?? 'missing'] ?? 0) + 1;
      provider[pr || 'none'] = (provider[pr || 'none'] ?? 0) + 1;
    }
    return { deliveryStatus: ds, provider };
  };

  const failures = [];
  const check = (r) => {
    const on = r.redis === 'cluster' ? ' on the cluster' : '';
    if (r.problem) failures.push(`${r.kind} worker${on}: ${r.problem}`);
    if (r.otps && (r.otps.deliveryStatus.sent ?? 0) !== r.jobs)
      failures.push(
        `${r.kind} worker${on}: delivery statuses ${JSON.stringify(r.otps.deliveryStatus)} (want ${r.jobs} sent)`,
      );
  };
  const show = (i, label, r) =>
    log(
      `  round ${i + 1} ${label.padEnd(18)} ${r.jobsPerSecond} jobs/s  (${r.finished}/${r.jobs} in ${r.drainSeconds} s)  cpu ${JSON.stringify(r.cpuCoresWhileDraining)}${r.otps ? `  otps ${JSON.stringify(r.otps)}` : ''}${r.masterLoad ? `  master shares ${r.masterLoad.masters.map((m) => m.commandShare).join('/')}` : ''}${r.problem ? `  PROBLEM ${r.problem}` : ''}`,
    );

  // (a), (b) and (b'), alternated; (b) and (b') also on the cluster when asked for, against the same (a)
  const runs = { noop: [], instant: [], real: [], clusterInstant: [], clusterReal: [] };
  const slow = {};
  Object.assign(partial, { runs, slowProvider: slow });
  log(
    `worker-drain: ${rounds} rounds of (a) no-op vs (b) real worker, ${jobs} jobs each, concurrency ${concurrency}; gateway on ${targets.join(' and ')}`,
  );
  let realStuck = false;
  for (let i = 0; i < rounds && !realStuck; i++) {
    await flushAll(single.rc);
    await addNoopJobs(jobs);
    const a = await drain(single, 'noop', jobs);
    check(a);
    runs.noop.push(a);
    show(i, '(a) no-op', a);

    for (const [g, key, label] of [
      [single, 'instant', '(b) instant'],
      [gateways.cluster, 'clusterInstant', '(b) instant cluster'],
    ]) {
      if (!g) continue;
      await flushAll(g.rc);
      await createOtps(g, jobs);
      const b = await drain(g, 'instant', jobs, {}, {
        profileAs: cpuProf && i === 0 && g === single ? 'worker-drain-instant' : null,
      });
      check(b);
      runs[key].push(b);
      show(i, label, b);
    }
    for (const [g, key, label] of [
      [single, 'real', "(b') http"],
      [gateways.cluster, 'clusterReal', "(b') http cluster"],
    ]) {
      if (!g) continue;
      await flushAll(g.rc);
      await createOtps(g, jobs);
      const b = await drain(g, 'real', jobs, {}, { profileAs: cpuProf && i === 0 && g === single ? 'worker-drain' : null });
      check(b);
      runs[key].push(b);
      show(i, label, b);
      // the real worker does not drain: report what was seen, do not spend the time again
      if (b.problem) realStuck = true;
    }
  }

  // (c) a slow provider: does throughput follow concurrency? (one Redis)
  if (runs.real.every((r) => !r.problem)) {
    await faults({ latencyMs: slowLatencyMs });
    // as many jobs as `slowWaves` full waves of the concurrency: both runs last about as long
    for (const c of [10, 50]) {
      const n = c * slowWaves;
      await flushAll(single.rc);
      await createOtps(single, n);
      const r = await drain(single, 'real', n, { WORKER_CONCURRENCY: String(c) });
      check(r);
      slow[c] = r;
      log(
        `  (c) twilio +${slowLatencyMs} ms, concurrency ${c}: ${r.jobsPerSecond} jobs/s (${r.finished}/${n} in ${r.drainSeconds} s; ideal ${round((c * 1000) / slowLatencyMs, 1)})${r.problem ? `  PROBLEM ${r.problem}` : ''}`,
      );
    }
    await faults({ latencyMs: 0 });
  } else {
    failures.push('(c) skipped: the real worker did not drain in (b)');
  }

  const medRate = (k) => median(runs[k].map((r) => r.jobsPerSecond ?? 0));
  const ratioOf = (k) => (runs[k].length > 0 ? round(medRate(k) / medRate('noop'), 3) : null);
  const ratio = ratioOf('instant');
  const httpRatio = ratioOf('real');
  if (ratio !== null && !(ratio >= MIN_DRAIN_RATIO)) failures.push(`drain ratio (b)/(a) ${ratio} < ${MIN_DRAIN_RATIO}`);
  const speedup =
    slow[10]?.jobsPerSecond && slow[50]?.jobsPerSecond
      ? round(slow[50].jobsPerSecond / slow[10].jobsPerSecond, 2)
      : null;
  if (slow[10] && !(speedup >= MIN_CONCURRENCY_SPEEDUP))
    failures.push(`(c) concurrency 50 vs 10 speed-up ${speedup} < ${MIN_CONCURRENCY_SPEEDUP}`);

  let cluster = null;
  if (gateways.cluster) {
    const spread = (k) => {
      const loads = runs[k].map((r) => r.masterLoad).filter(Boolean);
      if (loads.length === 0) return null;
      return {
        perMaster: loads[0].masters.map((m, i) => ({
          port: m.port,
          commandShare: median(loads.map((l) => l.masters[i].commandShare)),
          cpuCores: median(loads.map((l) => l.masters[i].cpuCores)),
        })),
        maxOverMean: median(loads.map((l) => l.maxOverMean)),
      };
    };
    cluster = {
      masters,
      nodes: gateways.cluster.store.nodesEnv,
      starter: gateways.cluster.store.starter,
      sendQueueShards: gateways.cluster.layout.queues.length,
      summary: { instantJobsPerSecond: medRate('clusterInstant'), httpJobsPerSecond: medRate('clusterReal') },
      /** against the same no-op baseline (a) on one Redis, in the same rounds */
      ratios: {
        drainRealOverNoop: ratioOf('clusterInstant'),
        drainHttpOverNoop: ratioOf('clusterReal'),
        instantClusterOverSingle: round(medRate('clusterInstant') / medRate('instant'), 3),
        httpClusterOverSingle: round(medRate('clusterReal') / medRate('real'), 3),
      },
      masterLoad: { instant: spread('clusterInstant'), http: spread('clusterReal') },
    };
  }

  return {
    ok: failures.length === 0,
    failures,
    settings: {
      jobs,
      rounds,
      concurrency,
      slowWaves,
      slowJobs: { 10: 10 * slowWaves, 50: 50 * slowWaves },
      slowLatencyMs,
      keepCompleted: KEEP_COMPLETED,
      logLevel: process.env.BENCH_LOG_LEVEL || 'info',
      redis: targets,
    },
    summary: {
      noopJobsPerSecond: medRate('noop'),
      instantJobsPerSecond: medRate('instant'),
      httpJobsPerSecond: medRate('real'),
      slowProvider: slow[10]
        ? {
            latencyMs: slowLatencyMs,
            concurrency10JobsPerSecond: slow[10].jobsPerSecond,
            concurrency50JobsPerSecond: slow[50]?.jobsPerSecond ?? null,
            ideal10: round(10_000 / slowLatencyMs, 1),
            ideal50: round(50_000 / slowLatencyMs, 1),
          }
        : null,
    },
    ratios: { drainRealOverNoop: ratio, drainHttpOverNoop: httpRatio, slowProviderSpeedup50over10: speedup },
    threshold: { drainRealOverNoopAtLeast: MIN_DRAIN_RATIO, slowProviderSpeedupAtLeast: MIN_CONCURRENCY_SPEEDUP },
    ...(cluster ? { cluster } : {}),
    runs: { ...runs, slowProvider: slow },
    ...(profile ? { profile } : {}),
  };
}

if (isMain(import.meta.url)) await runBenchmark('worker-drain', (partial) => workerDrainBench({}, partial));
