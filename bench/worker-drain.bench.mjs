// How fast the send worker drains its queue, against a no-op BullMQ worker on the same Redis in the same run:
//  (a) no-op worker (bench/support/noop-worker.mjs, same concurrency and lock settings) draining N pre-added jobs;
//  (b) the real worker (apps/worker's startSendWorker, bench/support/instant-worker.mjs) with instant in-process
//      providers, draining N real send jobs created through the real API; (b)/(a) is held to at least 0.40;
//  (b') the real worker process (apps/worker/dist/main.js) sending over HTTP to the simulator answering at once:
//      reported, not held (it adds the providers' HTTP clients, axios under twilio and Octopush, and the simulator);
//  (c) the simulator's Twilio answering after 300 ms: throughput at WORKER_CONCURRENCY 10 vs 50.
// Run alone: node bench/worker-drain.bench.mjs   (see bench/README.md for the knobs)
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  BENCH_DIR,
  BENCH_KEY,
  cannon,
  cpuSeconds,
  envInt,
  freePort,
  gatewayEnv,
  isMain,
  log,
  median,
  phoneCounter,
  RESULTS_DIR,
  ROOT,
  redisClient,
  round,
  runBenchmark,
  sleep,
  spawnNode,
  startApp,
  startRedis,
  waitForHttp,
} from './lib.mjs';
import { topFunctions } from './support/cpuprofile-top.mjs';

/** The project's floor for (b)/(a). */
export const MIN_DRAIN_RATIO = 0.4;
/** (c): concurrency 50 must drain at least this many times faster than 10 with a 300 ms provider (ideal: 5). */
export const MIN_CONCURRENCY_SPEEDUP = 3;

const QUEUE = 'otp-send';
const Q = (k) => `bull:${QUEUE}:${k}`;

export async function workerDrainBench(
  {
    jobs = envInt('BENCH_DRAIN_JOBS', 5000),
    rounds = envInt('BENCH_DRAIN_ROUNDS', 3),
    concurrency = envInt('BENCH_WORKER_CONCURRENCY', 50),
    slowWaves = envInt('BENCH_SLOW_WAVES', 20),
    slowLatencyMs = envInt('BENCH_SLOW_LATENCY_MS', 300),
    drainTimeoutMs = envInt('BENCH_DRAIN_TIMEOUT_MS', 60_000),
    cpuProf = process.env.BENCH_CPU_PROF === '1',
  } = {},
  partial = {},
) {
  const profDir = join(RESULTS_DIR, 'prof');
  let profile = null;
  const { SEND_JOB_OPTIONS } = await import(pathToFileURL(join(ROOT, 'packages', 'store', 'dist', 'index.js')).href);
  const redis = await startRedis();
  const rc = redisClient(redis.url);
  const [apiPort, simPort] = await Promise.all([freePort(), freePort()]);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const simUrl = `http://127.0.0.1:${simPort}`;
  const env = {
    ...gatewayEnv({ redisUrl: redis.url, simUrl, API_PORT: apiPort, SIMULATOR_PORT: simPort }),
    OTP_RESEND_COOLDOWN_SECONDS: '0',
    RATE_LIMIT_PER_KEY_PER_MINUTE: '10000000',
    RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
    PROVIDER_TIMEOUT_MS: '5000',
    // which provider the real worker prefers (twilio first, as in production's usual order, unless told)
    SMS_PROVIDERS: process.env.BENCH_SMS_PROVIDERS || 'twilio,octopush',
  };
  const sim = startApp('simulator', env);
  const api = startApp('api', env);
  await Promise.all([waitForHttp(`${simUrl}/healthz`, sim), waitForHttp(`${apiUrl}/readyz`, api)]);
  const nextPhone = phoneCounter();

  const faults = async (settings) => {
    const r = await fetch(`${simUrl}/_sim/faults/twilio`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(settings),
    });
    if (!r.ok) throw new Error(`simulator faults: ${r.status} ${await r.text()}`);
  };

  /** N real OTPs through the real API (no worker runs meanwhile): each queues one send job. */
  const createOtps = async (n) => {
    const r = await cannon({
      url: apiUrl,
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
    const waiting = await rc.llen(Q('wait'));
    if (r.statusCodes['202'] !== n || waiting !== n) {
      throw new Error(
        `creating ${n} OTPs through the API: answers ${JSON.stringify(r.statusCodes)}, errors ${r.errors}, ${waiting} jobs waiting`,
      );
    }
  };

  /** N jobs shaped like the API's (same options, data of the same size), added in bulk: for the no-op worker. */
  const addNoopJobs = async (n) => {
    const { Queue } = await import('bullmq');
    const queue = new Queue(QUEUE, { connection: rc, defaultJobOptions: SEND_JOB_OPTIONS });
    const exp = Date.now() + 600_000;
    for (let start = 0; start < n; start += 500) {
      const batch = [];
      for (let i = start; i < Math.min(n, start + 500); i++) {
        const otpId = `otp_${i.toString(16).padStart(32, '0')}`;
        batch.push({
          name: 'send',
          data: { otpId, to: nextPhone(), locale: 'en', sealedCode: 'x'.repeat(60), expiresAt: exp, callingCode: '33' },
          opts: { jobId: otpId },
        });
      }
      await queue.addBulk(batch);
    }
    await queue.close();
  };

  /**
   * Starts a worker, waits until `n` jobs have finished (completed or failed) or progress stops, stops it, and
   * measures the drain from BullMQ's own job timestamps: first processedOn to last finishedOn.
   */
  const drain = async (kind, n, workerEnv = {}, { profileAs = null } = {}) => {
    if (profileAs) {
      mkdirSync(profDir, { recursive: true });
      rmSync(join(profDir, `${profileAs}.cpuprofile`), { force: true });
    }
    const nodeArgs = profileAs
      ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${profileAs}.cpuprofile`]
      : [];
    const proc =
      kind === 'noop'
        ? spawnNode(
            'noop-worker',
            join(BENCH_DIR, 'support', 'noop-worker.mjs'),
            { REDIS_URL: redis.url, WORKER_CONCURRENCY: String(concurrency), ...workerEnv },
            { nodeArgs },
          )
        : kind === 'instant'
          ? spawnNode(
              'instant-worker',
              join(BENCH_DIR, 'support', 'instant-worker.mjs'),
              { ...env, WORKER_CONCURRENCY: String(concurrency), ...workerEnv },
              { nodeArgs },
            )
          : startApp('worker', { ...env, WORKER_CONCURRENCY: String(concurrency), ...workerEnv }, { nodeArgs });
    const cpu0 = { worker: null, simulator: cpuSeconds(sim.child.pid), redis: cpuSeconds(redis.pid) };
    const t0 = performance.now();
    await proc.waitForLog((l) => l.msg === 'worker started', 20_000);
    cpu0.worker = cpuSeconds(proc.child.pid);
    const tReady = performance.now();
    let done = 0;
    let last = -1;
    let lastChange = performance.now();
    let stalled = false;
    for (;;) {
      const [c, f] = await Promise.all([rc.zcard(Q('completed')), rc.zcard(Q('failed'))]);
      done = c + f;
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
    const cpu = {
      worker: cpu0.worker === null ? null : round((cpuSeconds(proc.child.pid) - cpu0.worker) / wallReady, 2),
      simulator: kind === 'real' ? round((cpuSeconds(sim.child.pid) - cpu0.simulator) / wallReady, 2) : undefined,
      redis: round((cpuSeconds(redis.pid) - cpu0.redis) / wallReady, 2),
    };
    const state = await queueState();
    const timing = await jobTiming();
    let outcome = null;
    if (kind !== 'noop') outcome = await otpOutcomes();
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
      jobs: n,
      finished: done,
      completed: state.completed,
      failed: state.failed,
      drainSeconds: timing ? round(timing.seconds, 3) : null,
      jobsPerSecond: timing ? round(timing.count / timing.seconds, 1) : null,
      startupSeconds: round((tReady - t0) / 1000, 2),
      cpuCoresWhileDraining: cpu,
      ...(outcome ? { otps: outcome } : {}),
    };
    if (stalled || state.failed > 0) {
      res.problem = stalled
        ? `stopped after ${done}/${n} jobs finished (no progress or timeout)`
        : `${state.failed} jobs failed`;
      res.queue = state;
      res.failedReasons = await failedReasons();
      res.workerLogTail = tail;
    }
    return res;
  };

  const queueState = async () => {
    const [wait, active, delayed, completed, failed, prioritized] = await Promise.all([
      rc.llen(Q('wait')),
      rc.llen(Q('active')),
      rc.zcard(Q('delayed')),
      rc.zcard(Q('completed')),
      rc.zcard(Q('failed')),
      rc.zcard(Q('prioritized')),
    ]);
    return { wait, active, delayed, completed, failed, prioritized };
  };
  const failedReasons = async () => {
    const ids = await rc.zrange(Q('failed'), 0, 199);
    const counts = {};
    for (const id of ids) {
      const reason = (await rc.hget(Q(id), 'failedReason')) ?? '?';
      counts[reason] = (counts[reason] ?? 0) + 1;
    }
    return counts;
  };
  const jobTiming = async () => {
    const ids = [...(await rc.zrange(Q('completed'), 0, -1)), ...(await rc.zrange(Q('failed'), 0, -1))];
    if (ids.length === 0) return null;
    const p = rc.pipeline();
    for (const id of ids) p.hmget(Q(id), 'processedOn', 'finishedOn');
    let first = Number.POSITIVE_INFINITY;
    let lastAt = 0;
    for (const [, [processedOn, finishedOn]] of await p.exec()) {
      if (processedOn) first = Math.min(first, Number(processedOn));
      if (finishedOn) lastAt = Math.max(lastAt, Number(finishedOn));
    }
    return { count: ids.length, seconds: Math.max(0.001, (lastAt - first) / 1000) };
  };
  /** Delivery statuses of the OTPs the jobs belong to (job id = OTP id): all must read `sent`. */
  const otpOutcomes = async () => {
    const ids = await rc.zrange(Q('completed'), 0, -1);
    const p = rc.pipeline();
    for (const id of ids) p.hmget(`otp:o:${id}`, 'ds', 'provider');
    const ds = {};
    const provider = {};
    for (const [, [d, pr]] of await p.exec()) {
      ds[d ?? 'missing'] = (ds[d ?? 'missing'] ?? 0) + 1;
      provider[pr || 'none'] = (provider[pr || 'none'] ?? 0) + 1;
    }
    return { deliveryStatus: ds, provider };
  };

  const failures = [];
  const check = (r) => {
    if (r.problem) failures.push(`${r.kind} worker: ${r.problem}`);
    if (r.otps && (r.otps.deliveryStatus.sent ?? 0) !== r.jobs)
      failures.push(`real worker: delivery statuses ${JSON.stringify(r.otps.deliveryStatus)} (want ${r.jobs} sent)`);
  };

  // (a) and (b), alternated
  const runs = { noop: [], instant: [], real: [] };
  const slow = {};
  Object.assign(partial, { runs, slowProvider: slow });
  log(`worker-drain: ${rounds} rounds of (a) no-op vs (b) real worker, ${jobs} jobs each, concurrency ${concurrency}`);
  for (let i = 0; i < rounds; i++) {
    await rc.flushdb();
    await addNoopJobs(jobs);
    const a = await drain('noop', jobs);
    check(a);
    runs.noop.push(a);
    log(
      `  round ${i + 1} (a) no-op  ${a.jobsPerSecond} jobs/s  (${a.finished}/${jobs} in ${a.drainSeconds} s)  cpu ${JSON.stringify(a.cpuCoresWhileDraining)}`,
    );

    await rc.flushdb();
    await createOtps(jobs);
    const bi = await drain('instant', jobs, {}, { profileAs: cpuProf && i === 0 ? 'worker-drain-instant' : null });
    check(bi);
    runs.instant.push(bi);
    log(
      `  round ${i + 1} (b) instant ${bi.jobsPerSecond} jobs/s  (${bi.finished}/${jobs} in ${bi.drainSeconds} s)  cpu ${JSON.stringify(bi.cpuCoresWhileDraining)}  otps ${JSON.stringify(bi.otps)}${bi.problem ? `  PROBLEM ${bi.problem}` : ''}`,
    );

    await rc.flushdb();
    await createOtps(jobs);
    const b = await drain('real', jobs, {}, { profileAs: cpuProf && i === 0 ? 'worker-drain' : null });
    check(b);
    runs.real.push(b);
    log(
      `  round ${i + 1} (b') http   ${b.jobsPerSecond} jobs/s  (${b.finished}/${jobs} in ${b.drainSeconds} s)  cpu ${JSON.stringify(b.cpuCoresWhileDraining)}  otps ${JSON.stringify(b.otps)}${b.problem ? `  PROBLEM ${b.problem}` : ''}`,
    );
    if (b.problem) break; // the real worker does not drain: report what was seen, do not spend the time again
  }

  // (c) a slow provider: does throughput follow concurrency?
  if (runs.real.every((r) => !r.problem)) {
    await faults({ latencyMs: slowLatencyMs });
    // as many jobs as `slowWaves` full waves of the concurrency: both runs last about as long
    for (const c of [10, 50]) {
      const n = c * slowWaves;
      await rc.flushdb();
      await createOtps(n);
      const r = await drain('real', n, { WORKER_CONCURRENCY: String(c) });
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
  const ratio = runs.instant.length > 0 ? round(medRate('instant') / medRate('noop'), 3) : null;
  const httpRatio = runs.real.length > 0 ? round(medRate('real') / medRate('noop'), 3) : null;
  if (ratio !== null && !(ratio >= MIN_DRAIN_RATIO)) failures.push(`drain ratio (b)/(a) ${ratio} < ${MIN_DRAIN_RATIO}`);
  const speedup =
    slow[10]?.jobsPerSecond && slow[50]?.jobsPerSecond
      ? round(slow[50].jobsPerSecond / slow[10].jobsPerSecond, 2)
      : null;
  if (slow[10] && !(speedup >= MIN_CONCURRENCY_SPEEDUP))
    failures.push(`(c) concurrency 50 vs 10 speed-up ${speedup} < ${MIN_CONCURRENCY_SPEEDUP}`);

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
      logLevel: process.env.BENCH_LOG_LEVEL || 'info',
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
    runs: { ...runs, slowProvider: slow },
    ...(profile ? { profile } : {}),
  };
}

if (isMain(import.meta.url)) await runBenchmark('worker-drain', (partial) => workerDrainBench({}, partial));
