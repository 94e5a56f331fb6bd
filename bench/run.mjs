// Runs every benchmark, one process each, one after the other, and writes bench/results/latest.json and a human
// summary bench/results/latest.md. Exits 1 when any benchmark failed its checks or its threshold.
// Usage: pnpm bench   (or node bench/run.mjs); BENCH_ONLY=api-send,webhooks runs a subset. See bench/README.md.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DIR, machine, RESULTS_DIR, ROOT } from './lib.mjs';

const BENCHES = ['api-send', 'webhooks', 'worker-drain'];
const only = (process.env.BENCH_ONLY ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const selected = only.length > 0 ? BENCHES.filter((b) => only.includes(b)) : BENCHES;
/** A benchmark that runs longer than this is stopped (each bounds itself well below). */
const BENCH_TIMEOUT_MS = 240_000;

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
    const timer = setTimeout(() => current.kill('SIGTERM'), BENCH_TIMEOUT_MS);
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
  ok,
  results,
};
writeFileSync(join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(RESULTS_DIR, 'latest.md'), markdown(report));
process.stderr.write(`\n${markdown(report)}\nwritten bench/results/latest.json and bench/results/latest.md\n`);
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
      `| api-send | ${verdict(x)} | throughput gateway/bare Fastify = ${x.ratios?.throughput ?? '?'}; non-202 answers: ${nonOk(x.answers?.gateway, '202')} | ≥ ${x.threshold?.throughputRatioAtLeast ?? '?'}; 0 |`,
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
        ...Object.values(d.runs.slowProvider ?? {}),
      ].filter((q) => q.problem);
      for (const q of problems)
        out.push(
          `Problem: ${q.problem}; queue ${JSON.stringify(q.queue)}; failed reasons ${JSON.stringify(q.failedReasons)}`,
          '',
        );
      if (d.profile?.selfByFunction) out.push(...profileMd(d.profile));
    }
  }
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
