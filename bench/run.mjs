// Runs every benchmark, one process each, one after the other, and writes bench/results/latest.json and a human
// summary bench/results/latest.md. Exits 1 when any benchmark failed its checks or its threshold.
// Usage: pnpm bench   (or node bench/run.mjs); BENCH_ONLY=api-send,webhooks runs a subset. See bench/README.md.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DIR, machine, RESULTS_DIR, ROOT } from './lib.mjs';

const BENCHES = ['api-send', 'webhooks', 'worker-drain', 'memory', 'status-events', 'headline', 'end-to-end'];
const only = (process.env.BENCH_ONLY ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const selected = only.length > 0 ? BENCHES.filter((b) => only.includes(b)) : BENCHES;
/** One Redis (default) or also a cluster (BENCH_REDIS=both): see bench/README.md. */
const both = process.env.BENCH_REDIS === 'both';
/**
 * Where the summary goes: bench/results/<out>.json and .md; `latest` by default, `cluster` for a run with the
 * cluster beside one Redis (so that it does not replace the single-Redis figures); BENCH_OUT overrides.
 */
const OUT = process.env.BENCH_OUT || (both ? 'cluster' : 'latest');
/**
 * A benchmark that runs longer than this is stopped (each bounds itself below: a worker-drain run stops after 60 s
 * at most, and a loaded machine can make its rounds several times longer than on a quiet one).
 */
const BENCH_TIMEOUT_MS = { memory: 330_000, 'worker-drain': 600_000, headline: 420_000, 'end-to-end': 420_000 };
const timeoutOf = (name) => (BENCH_TIMEOUT_MS[name] ?? 240_000) * (both && name !== 'memory' ? 2 : 1);

const missing = ['api', 'worker', 'webhooks', 'simulator']
  .map((a) => join(ROOT, 'apps', a, 'dist', 'main.js'))
  .filter((f) => !existsSync(f));
if (missing.length > 0) {
  process.stderr.write(`missing builds (run \`pnpm -s build\` first):\n  ${missing.join('\n  ')}\n`);
  process.exit(1);
}

mkdirSync(RESULTS_DIR, { recursive: true });
const started = new Date();
const results = {};
let current = null;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    // the benchmark stops what it started on the same signal
    if (current && current.exitCode === null) current.kill(sig);
    else process.exit(130);
  });
}

for (const name of selected) {
  const file = join(RESULTS_DIR, `.${name}.run.json`);
  rmSync(file, { force: true });
  process.stderr.write(`\n=== ${name} ===\n`);
  const t0 = Date.now();
  const code = await new Promise((resolve) => {
    current = spawn(process.execPath, [join(BENCH_DIR, `${name}.bench.mjs`)], {
      cwd: ROOT,
      env: { ...process.env, BENCH_RESULT_FILE: file },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const timer = setTimeout(() => current.kill('SIGTERM'), timeoutOf(name));
    current.on('exit', (c, s) => {
      clearTimeout(timer);
      resolve(c ?? s);
    });
  });
  current = null;
  try {
    results[name] = JSON.parse(readFileSync(file, 'utf8'));
    rmSync(file, { force: true });
  } catch {
    results[name] = {
      name,
      ok: false,
      error: `the benchmark process ended (${code}) without a result`,
      wallSeconds: (Date.now() - t0) / 1000,
    };
  }
}

const ok = Object.values(results).every((r) => r.ok);
const report = {
  startedAt: started.toISOString(),
  wallSeconds: Math.round((Date.now() - started) / 100) / 10,
  machine: machine(),
  redis: both ? 'single and cluster' : 'single',
  ok,
  results,
};
writeFileSync(join(RESULTS_DIR, `${OUT}.json`), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(RESULTS_DIR, `${OUT}.md`), markdown(report));
process.stderr.write(`\n${markdown(report)}\nwritten bench/results/${OUT}.json and bench/results/${OUT}.md\n`);
process.exit(ok ? 0 : 1);

function markdown(rep) {
  const m = rep.machine;
  const out = [
    `# Benchmark results`,
    '',
    `${rep.startedAt}, ${rep.wallSeconds} s in all; ${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB, node ${m.node}, ${m.platform}.`,
    'Each figure is compared with a baseline measured in the same run (machines are noisy); medians of alternated runs.',
    '',
    '| benchmark | result | figure held to a threshold | threshold |',
    '|---|---|---|---|',
  ];
  const r = rep.results;
  const verdict = (x) => (x?.ok ? 'pass' : x?.error ? 'ERROR' : 'FAIL');
  if (r['api-send']) {
    const x = r['api-send'];
    out.push(
      `| api-send | ${verdict(x)} | throughput gateway/bare Fastify = ${x.ratios?.throughput ?? '?'}; non-202 answers: ${nonOk(x.answers?.gateway, '202')}${x.fixedRate ? `; p99 at ${x.fixedRate.gateway.rate}/s = ${x.fixedRate.gateway.p99} ms` : ''} | ≥ ${x.threshold?.throughputRatioAtLeast ?? '?'}; 0${x.fixedRate ? `; target (reported) p99 ≤ ${x.target.fixedRateP99MsAtMost} ms` : ''} |`,
    );
  }
  if (r.webhooks) {
    const x = r.webhooks;
    out.push(
      `| webhooks | ${verdict(x)} | worst saturated p99 = ${x.summary?.gateway?.worstP99 ?? '?'} ms; p99 at ${x.summary?.fixedRate?.rate ?? '?'}/s = ${x.summary?.fixedRate?.gatewayP99 ?? '?'} ms | < ${x.threshold?.worstSaturatedP99MsBelow ?? '?'} ms; < ${x.threshold?.fixedRateP99MsBelow ?? '?'} ms |`,
    );
  }
  if (r['worker-drain']) {
    const x = r['worker-drain'];
    out.push(
      `| worker-drain | ${verdict(x)} | drain (instant providers)/no-op = ${x.ratios?.drainRealOverNoop ?? '?'} (over HTTP to the simulator: ${x.ratios?.drainHttpOverNoop ?? '?'}, not held); slow provider speed-up 50 vs 10 = ${x.ratios?.slowProviderSpeedup50over10 ?? '?'} | ≥ ${x.threshold?.drainRealOverNoopAtLeast ?? '?'}; ≥ ${x.threshold?.slowProviderSpeedupAtLeast ?? '?'} |`,
    );
  }
  if (r.memory) {
    const x = r.memory;
    out.push(
      `| memory | ${verdict(x)} | Redis bytes per OTP: queued ${x.bytesPerOtp?.queued ?? '?'}, after delivery ${x.bytesPerOtp?.delivered ?? '?'} | ≤ ${x.threshold?.queuedBytesAtMost ?? '?'}; ≤ ${x.threshold?.deliveredBytesAtMost ?? '?'} |`,
    );
  }
  // Newer benchmarks describe themselves: a row for this table and a section (summaryRow, summaryThreshold, sectionMd).
  for (const [name, q] of Object.entries(r)) {
    if (q.summaryRow) out.push(`| ${name} | ${verdict(q)} | ${q.summaryRow} | ${q.summaryThreshold ?? ''} |`);
  }
  out.push('');

  const x = r['api-send'];
  if (x?.summary) {
    out.push(
      '## api-send: `POST /v1/otp/send`',
      '',
      `${x.settings.connections} connections, ${x.settings.rounds} rounds of ${x.settings.durationSeconds} s each side, alternated; log level ${x.settings.logLevel}.`,
      '',
      '| | req/s (median) | p50 ms | p99 ms |',
      '|---|---|---|---|',
      `| bare Fastify | ${x.summary.baseline.rps} | ${x.summary.baseline.p50} | ${x.summary.baseline.p99} |`,
      `| gateway API | ${x.summary.gateway.rps} | ${x.summary.gateway.p50} | ${x.summary.gateway.p99} |`,
      `| ratio gateway/baseline | **${x.ratios.throughput}** | ${x.ratios.p50Latency ?? 'n/a (baseline < 1 ms)'} | ${x.ratios.p99Latency ?? 'n/a (baseline < 1 ms)'} |`,
      '',
      `Median of the per-round ratios: ${x.ratios.throughputPairedMedian}. Rounds (req/s): baseline ${x.runs.baseline.map((q) => q.rps).join(', ')}; gateway ${x.runs.gateway.map((q) => q.rps).join(', ')}.`,
      `Answers: gateway ${JSON.stringify(x.answers.gateway)}, baseline ${JSON.stringify(x.answers.baseline)}; ${x.checks.jobsQueued} jobs queued, ${x.checks.otpRecords} OTP records.`,
      '',
    );
    const f = x.fixedRate;
    if (f)
      out.push(
        `At a fixed ${f.gateway.rate} sends a second, evenly paced, for ${f.gateway.seconds} s (at most 50 in flight; latency from when each request was due): gateway p50 ${f.gateway.p50} ms, p99 **${f.gateway.p99} ms**, max ${f.gateway.max} ms; bare Fastify p50 ${f.baseline.p50} ms, p99 ${f.baseline.p99} ms. Target (reported): p99 ≤ ${x.target.fixedRateP99MsAtMost} ms${typeof f.gateway.p99 === 'number' && f.gateway.p99 <= x.target.fixedRateP99MsAtMost ? ': met' : ': missed'}.`,
        '',
      );
    if (x.cluster) out.push(...apiClusterMd(x));
    if (x.profile?.selfByFunction) out.push(...profileMd(x.profile));
  }
  const w = r.webhooks;
  if (w?.summary) {
    out.push(
      '## webhooks: `POST /webhooks/octopush/delivery/{token}`',
      '',
      `${w.settings.connections} connections, ${w.settings.rounds} rounds of ${w.settings.durationSeconds} s each side, then ${w.settings.fixedRate} req/s for ${w.settings.durationSeconds} s; ${w.settings.seeded} accepted Octopush attempts seeded.`,
      '',
      '| | req/s (median) | p50 ms | p99 ms | p99 at a fixed rate |',
      '|---|---|---|---|---|',
      `| bare Fastify | ${w.summary.baseline.rps} | ${w.summary.baseline.p50} | ${w.summary.baseline.p99} | ${w.summary.fixedRate.baselineP99} |`,
      `| callbacks app | ${w.summary.gateway.rps} | ${w.summary.gateway.p50} | ${w.summary.gateway.p99} (worst ${w.summary.gateway.worstP99}) | ${w.summary.fixedRate.gatewayP99} |`,
      `| ratio | ${w.ratios.throughput} | ${w.ratios.p50Latency ?? 'n/a (baseline < 1 ms)'} | **${w.ratios.p99Latency ?? 'n/a'}** | ${w.ratios.fixedRateP99 ?? 'n/a'} |`,
      '',
      `Checks: ${w.checks.otpsDelivered} seeded OTPs read \`delivered\` after ${w.answers.gateway['200'] ?? 0} callbacks answered 200 (ids reused: ${w.checks.wrapped}); early-report lists: ${w.checks.earlyReportLists}.`,
      '',
    );
  }
  const d = r['worker-drain'];
  const dr = d?.summary ? d : d?.partial ? { ...d, runs: d.partial.runs } : null;
  if (dr) {
    out.push('## worker-drain', '');
    if (d.summary) {
      out.push(
        `${d.settings.jobs} jobs per run, concurrency ${d.settings.concurrency}, ${d.settings.rounds} rounds alternated.`,
        '',
        '| | jobs/s (median) | runs |',
        '|---|---|---|',
        `| (a) no-op BullMQ worker | ${d.summary.noopJobsPerSecond} | ${d.runs.noop.map((q) => q.jobsPerSecond).join(', ')} |`,
        `| (b) send worker, instant in-process providers | ${d.summary.instantJobsPerSecond} | ${d.runs.instant.map((q) => q.jobsPerSecond).join(', ')} |`,
        `| (b') send worker process over HTTP, simulator at 0 ms | ${d.summary.httpJobsPerSecond} | ${d.runs.real.map((q) => q.jobsPerSecond).join(', ')} |`,
        `| ratio (b)/(a), held | **${d.ratios.drainRealOverNoop}** | |`,
        `| ratio (b')/(a), reported | ${d.ratios.drainHttpOverNoop} | |`,
        '',
      );
      const s = d.summary.slowProvider;
      if (s) {
        out.push(
          `(c) Twilio answering after ${s.latencyMs} ms: concurrency 10 → ${s.concurrency10JobsPerSecond} jobs/s (ideal ${s.ideal10}), concurrency 50 → ${s.concurrency50JobsPerSecond} jobs/s (ideal ${s.ideal50}); speed-up **${d.ratios.slowProviderSpeedup50over10}** (ideal 5).`,
          '',
        );
      }
      const problems = [
        ...(d.runs.instant ?? []),
        ...(d.runs.real ?? []),
        ...(d.runs.clusterInstant ?? []),
        ...(d.runs.clusterReal ?? []),
        ...Object.values(d.runs.slowProvider ?? {}),
      ].filter((q) => q.problem);
      for (const q of problems)
        out.push(
          `Problem (${q.kind}, ${q.redis}): ${q.problem}; queue ${JSON.stringify(q.queue)}; failed reasons ${JSON.stringify(q.failedReasons)}`,
          '',
        );
      if (d.cluster) out.push(...drainClusterMd(d));
      if (d.profile?.selfByFunction) out.push(...profileMd(d.profile));
    }
  }
  if (r.memory?.bytesPerOtp) out.push(...memoryMd(r.memory));
  for (const q of Object.values(r)) if (q.sectionMd) out.push(...q.sectionMd);
  for (const [name, q] of Object.entries(r)) {
    if (q.error) out.push(`**${name} error:** \`${q.error.split('\n')[0]}\``, '');
    else if (!q.ok) out.push(`**${name} failed:** ${q.failures.join('; ')}`, '');
  }
  return `${out.join('\n')}\n`;
}

function nonOk(answers, okCode) {
  if (!answers) return '?';
  return Object.entries(answers)
    .filter(([k]) => k !== okCode && k !== 'errors')
    .reduce((s, [, v]) => s + v, answers.errors ?? 0);
}

function profileMd(p) {
  return [
    `CPU profile (\`${p.file}\`, only while under load; ${p.busyPercentOfWall}% of samples busy): inclusive by package ${p.inclusiveByPackage
      .slice(0, 10)
      .map((e) => `${e.name} ${e.percent}%`)
      .join(', ')}; self by function ${p.selfByFunction
      .slice(0, 8)
      .map((e) => `${e.name} ${e.percent}%`)
      .join(', ')}.`,
    '',
  ];
}

function spreadMd(load) {
  if (!load) return 'n/a';
  return `${load.perMaster.map((m) => `:${m.port} ${Math.round(m.commandShare * 100)}% of commands, ${m.cpuCores} cores`).join('; ')} (busiest/mean ${load.maxOverMean})`;
}

function apiClusterMd(x) {
  const c = x.cluster;
  return [
    `On a ${c.masters}-master Redis Cluster (${c.sendQueueShards} send queue shards; started by ${c.starter}), in the same rounds against the same baseline:`,
    '',
    '| | req/s (median) | p50 ms | p99 ms | throughput / bare Fastify | cluster / one Redis |',
    '|---|---|---|---|---|---|',
    `| gateway API, one Redis | ${x.summary.gateway.rps} | ${x.summary.gateway.p50} | ${x.summary.gateway.p99} | ${x.ratios.throughput} | 1 |`,
    `| gateway API, cluster | ${c.summary.rps} | ${c.summary.p50} | ${c.summary.p99} | ${c.ratios.throughput} | ${c.ratios.clusterOverSingle} |`,
    '',
    `Masters while under load (medians over the rounds): ${spreadMd(c.masterLoad)}. Cluster rounds (req/s): ${x.runs.cluster.map((q) => q.rps).join(', ')}. Checks on the cluster: ${c.checks.jobsQueued} jobs queued (per shard ${c.checks.jobsQueuedPerShard.join('/')}), ${c.checks.otpRecords} OTP records.`,
    '',
  ];
}

function drainClusterMd(d) {
  const c = d.cluster;
  return [
    `On a ${c.masters}-master Redis Cluster (${c.sendQueueShards} send queue shards, the worker consuming all of them; started by ${c.starter}), in the same rounds, against the same no-op baseline (a) on one Redis:`,
    '',
    '| | jobs/s (median) | runs | / no-op (a) | cluster / one Redis |',
    '|---|---|---|---|---|',
    `| (b) instant providers, cluster | ${c.summary.instantJobsPerSecond} | ${d.runs.clusterInstant.map((q) => q.jobsPerSecond).join(', ')} | ${c.ratios.drainRealOverNoop} | ${c.ratios.instantClusterOverSingle} |`,
    `| (b') over HTTP, cluster | ${c.summary.httpJobsPerSecond} | ${d.runs.clusterReal.map((q) => q.jobsPerSecond).join(', ')} | ${c.ratios.drainHttpOverNoop} | ${c.ratios.httpClusterOverSingle} |`,
    '',
    `Masters while draining (b): ${spreadMd(c.masterLoad.instant)}; (b'): ${spreadMd(c.masterLoad.http)}.`,
    '',
  ];
}

function memoryMd(m) {
  const fam = (f) =>
    Object.entries(f)
      .filter(([, v]) => v.keys > 0)
      .map(([k, v]) => `${k} ${v.bytesPerOtp} (${v.keys} keys)`)
      .join(', ');
  return [
    '## memory: Redis bytes per OTP',
    '',
    `${m.settings.otps} OTPs through the real API on a fresh Redis ${m.settings.redisVersion} (${m.settings.allocator}); record retention ${m.settings.recordRetentionSeconds} s, completed jobs kept ${m.settings.keepCompletedJobs}, everything at its defaults. \`used_memory\` (INFO memory; allocator fragmentation not included) grown, divided by N.`,
    '',
    '| | bytes per OTP (held) | without fixed costs (events stream, kept jobs, scripts) | MEMORY USAGE of the keys, per OTP |',
    '|---|---|---|---|',
    `| queued (no worker) | **${m.bytesPerOtp.queued}** | ${m.bytesPerOtpWithoutFixedCosts.queued} | ${m.keysPerOtp.queued} |`,
    `| after delivery | **${m.bytesPerOtp.delivered}** | ${m.bytesPerOtpWithoutFixedCosts.delivered} | ${m.keysPerOtp.delivered} |`,
    '',
    `By key family, MEMORY USAGE per OTP (bytes): queued: ${fam(m.families.queued)}; after delivery: ${fam(m.families.delivered)}. Due set members after delivery: ${JSON.stringify(m.families.delivered.dueSets?.members ?? {})}.`,
    `Besides the keys (MEMORY STATS, per OTP, after delivery): ${Object.entries(m.memoryStatsPerOtp.delivered)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}.`,
    `Checks: ${m.checks.accepted202} answers 202; delivery statuses through the API ${JSON.stringify(m.checks.deliveryStatusThroughApi)} after ${m.checks.deliveredAfterSeconds} s; accepted by provider ${JSON.stringify(m.checks.acceptedByProvider)}.`,
    '',
  ];
}
