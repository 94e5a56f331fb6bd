// POST /v1/otp/send on the real API process (real Redis, BullMQ queue, no worker) against a bare Fastify route
// that parses the same JSON and answers 202 with a similar JSON, in the same run, runs alternated.
// Run alone: node bench/api-send.bench.mjs   (see bench/README.md for the knobs)
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  BENCH_KEY,
  cannon,
  envInt,
  freePort,
  gatewayEnv,
  isMain,
  log,
  median,
  phoneCounter,
  RESULTS_DIR,
  ratio,
  redisClient,
  round,
  runBenchmark,
  sleep,
  startApp,
  startBareFastify,
  startRedis,
  waitForHttp,
} from './lib.mjs';
import { topFunctions } from './support/cpuprofile-top.mjs';

/** The gateway must keep at least this share of the bare route's throughput (see README). */
export const MIN_THROUGHPUT_RATIO = 0.08;

export async function apiSendBench(
  {
    connections = envInt('BENCH_CONNECTIONS', 20),
    duration = envInt('BENCH_DURATION', 4),
    rounds = envInt('BENCH_ROUNDS', 5),
    warmup = envInt('BENCH_WARMUP', 2),
    cpuProf = process.env.BENCH_CPU_PROF === '1',
  } = {},
  partial = {},
) {
  const redis = await startRedis();
  const apiPort = await freePort();
  const profDir = join(RESULTS_DIR, 'prof');
  if (cpuProf) mkdirSync(profDir, { recursive: true });
  const api = startApp(
    'api',
    {
      ...gatewayEnv({ redisUrl: redis.url, API_PORT: apiPort }),
      OTP_RESEND_COOLDOWN_SECONDS: '0',
      RATE_LIMIT_PER_KEY_PER_MINUTE: '10000000',
      RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
    },
    cpuProf ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-name=api-send.cpuprofile'] } : {},
  );
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const base = await startBareFastify();
  await waitForHttp(`${apiUrl}/readyz`, api);

  const nextPhone = phoneCounter();
  const windows = [];
  const load = async (url, seconds) => {
    const t0 = performance.now();
    const r = await cannon({
      url,
      watch: { server: url === apiUrl ? api.child.pid : base.proc.child.pid, redis: redis.pid },
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
    if (url === apiUrl) windows.push([t0, performance.now()]);
    return r;
  };

  const answers = { gateway: {}, baseline: {} };
  const count = (side, r) => {
    for (const [k, v] of Object.entries(r.statusCodes)) answers[side][k] = (answers[side][k] ?? 0) + v;
    answers[side].errors = (answers[side].errors ?? 0) + r.errors;
  };

  log(`api-send: warm-up ${warmup}s each, then ${rounds} rounds x ${duration}s, ${connections} connections`);
  count('baseline', await load(base.url, warmup));
  count('gateway', await load(apiUrl, warmup));
  const runs = { baseline: [], gateway: [] };
  Object.assign(partial, { runs, answers });
  for (let i = 0; i < rounds; i++) {
    for (const [side, url] of [
      ['baseline', base.url],
      ['gateway', apiUrl],
    ]) {
      const r = await load(url, duration);
      count(side, r);
      runs[side].push(r);
      log(
        `  round ${i + 1} ${side.padEnd(8)} ${r.rps} req/s  p50 ${r.latencyMs.p50} ms  p99 ${r.latencyMs.p99} ms  codes ${JSON.stringify(r.statusCodes)} errors ${r.errors}  cpu ${JSON.stringify(r.cpuCores)}`,
      );
    }
  }

  // every 202 must have queued one job (no worker runs: they all wait)
  const rc = redisClient(redis.url);
  // the requests autocannon left in flight are still being served: count once the numbers stop moving
  let queued = -1;
  let otps = -1;
  for (let i = 0; i < 50; i++) {
    await sleep(200);
    const [q, o] = await Promise.all([rc.llen('bull:otp-send:wait'), countKeys(rc, 'otp:o:*')]);
    if (q === queued && o === otps) break;
    [queued, otps] = [q, o];
  }
  const accepted = answers.gateway['202'] ?? 0;
  // OTP records that have no send job: such an OTP would never be sent
  const orphans = queued === otps ? [] : await otpsWithoutJob(rc);

  await api.stop();
  // the server's own view of its answers (including those autocannon cut off when a run ended)
  const served = {};
  for (const l of api.logs()) {
    if (l.msg === 'request completed' && l.req === undefined && l.res?.statusCode)
      served[l.res.statusCode] = (served[l.res.statusCode] ?? 0) + 1;
  }
  const exitedAt = performance.now();
  let profile = null;
  if (cpuProf) {
    const file = readdirSync(profDir).find((f) => f === 'api-send.cpuprofile');
    // only the samples taken while the gateway was under load (not start-up, not the baseline's turns)
    const w = windows.slice(1).map(([a, b]) => [exitedAt - a, exitedAt - b]);
    profile = file
      ? {
          file: `bench/results/prof/${file}`,
          windowsMsBeforeEnd: w.map((x) => x.map(Math.round)),
          ...topFunctions(join(profDir, file), 25, w),
        }
      : { error: 'no profile written' };
  }

  const med = (side, f) => median(runs[side].map(f));
  const summary = {
    baseline: {
      rps: med('baseline', (r) => r.rps),
      p50: med('baseline', (r) => r.latencyMs.p50),
      p99: med('baseline', (r) => r.latencyMs.p99),
    },
    gateway: {
      rps: med('gateway', (r) => r.rps),
      p50: med('gateway', (r) => r.latencyMs.p50),
      p99: med('gateway', (r) => r.latencyMs.p99),
    },
  };
  const ratios = {
    throughput: round(summary.gateway.rps / summary.baseline.rps),
    /** the same from each round's pair (baseline then gateway, seconds apart): less exposed to drifting load */
    throughputPairedMedian: round(median(runs.gateway.map((g, i) => g.rps / runs.baseline[i].rps))),
    p50Latency: ratio(summary.gateway.p50, summary.baseline.p50),
    p99Latency: ratio(summary.gateway.p99, summary.baseline.p99),
  };
  const failures = [];
  const non202 = (side) =>
    Object.entries(answers[side])
      .filter(([k]) => k !== '202' && k !== 'errors')
      .reduce((s, [, v]) => s + v, 0);
  if (non202('gateway') > 0)
    failures.push(`gateway answered ${non202('gateway')} non-202: ${JSON.stringify(answers.gateway)}`);
  if (answers.gateway.errors > 0) failures.push(`gateway: ${answers.gateway.errors} connection errors or timeouts`);
  if (non202('baseline') > 0 || answers.baseline.errors > 0)
    failures.push(`baseline misbehaved: ${JSON.stringify(answers.baseline)}`);
  // autocannon stops at its deadline with up to `connections` requests in flight per load: those were served
  // (queued) but their answers not counted
  const inFlightMax = connections * (rounds + 1);
  if (queued !== otps || queued < accepted || queued > accepted + inFlightMax) {
    failures.push(
      `${accepted} answers 202 but ${queued} jobs queued and ${otps} OTP records (in flight at most ${inFlightMax}); ${orphans.length} OTPs without a job, e.g. ${JSON.stringify(orphans.slice(0, 3))}; the API logged answers ${JSON.stringify(served)}`,
    );
  }
  if (!(ratios.throughput >= MIN_THROUGHPUT_RATIO))
    failures.push(`throughput ratio ${ratios.throughput} < ${MIN_THROUGHPUT_RATIO}`);

  return {
    ok: failures.length === 0,
    failures,
    settings: {
      connections,
      durationSeconds: duration,
      rounds,
      warmupSeconds: warmup,
      logLevel: process.env.BENCH_LOG_LEVEL || 'info',
    },
    summary,
    ratios,
    threshold: { throughputRatioAtLeast: MIN_THROUGHPUT_RATIO, non202: 0 },
    answers,
    checks: {
      accepted202: accepted,
      jobsQueued: queued,
      otpRecords: otps,
      otpsWithoutJob: orphans.length,
      answersLoggedByApi: served,
    },
    runs,
    ...(profile ? { profile } : {}),
  };
}

async function otpsWithoutJob(redis) {
  const found = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', 'otp:o:*', 'COUNT', 5000);
    cursor = next;
    const p = redis.pipeline();
    for (const k of batch) p.exists(`bull:otp-send:${k.slice('otp:o:'.length)}`);
    const res = await p.exec();
    batch.forEach((k, i) => {
      if (res[i][1] === 0) found.push(k);
    });
  } while (cursor !== '0');
  const out = [];
  for (const k of found) {
    const [status, ds, created] = await redis.hmget(k, 'status', 'ds', 'created');
    out.push({ key: k, status, ds, created });
  }
  return out;
}

async function countKeys(redis, pattern) {
  let cursor = '0';
  let n = 0;
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
    cursor = next;
    n += batch.length;
  } while (cursor !== '0');
  return n;
}

if (isMain(import.meta.url)) await runBenchmark('api-send', (partial) => apiSendBench({}, partial));
