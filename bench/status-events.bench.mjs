// Status webhooks: how fast one worker process delivers events to a local receiver, beside its send drain.
//  (a) drain: N OTPs created through the real API with no worker running, then one real worker process
//      (apps/worker/dist/main.js, simulator answering at once) started: sends/s until every send job completed,
//      and, in the same run and the same process, otp.sent events delivered/s to the receiver (one per OTP);
//  (b) events alone: N event jobs added to the otp-events queue while that worker idles: events/s delivered.
// The receiver is an http server in this process answering 204 after checking nothing (the gateway signs each
// request with HMAC-SHA256 all the same). Reported, not held to a threshold.
// Run alone: node bench/status-events.bench.mjs   (BENCH_EVENTS=2000, BENCH_WORKER_CONCURRENCY=50)
import { createServer } from 'node:http';
import {
  BENCH_KEY,
  envInt,
  freePort,
  gatewayEnv,
  gatewayLayout,
  gatewayPackages,
  isMain,
  log,
  phoneCounter,
  redisClient,
  round,
  runBenchmark,
  sleep,
  startApp,
  startRedis,
  waitForHttp,
} from './lib.mjs';

export async function statusEventsBench({
  n = envInt('BENCH_EVENTS', 2000),
  concurrency = envInt('BENCH_WORKER_CONCURRENCY', 50),
} = {}) {
  const received = [];
  const receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received.push({ at: performance.now(), id: req.headers['webhook-id'] });
      res.statusCode = 204;
      res.end();
    });
  });
  const hookPort = await freePort();
  await new Promise((r) => receiver.listen(hookPort, '127.0.0.1', r));
  try {
    const store = await startRedis();
    const [apiPort, simPort] = await Promise.all([freePort(), freePort()]);
    const simUrl = `http://127.0.0.1:${simPort}`;
    const env = {
      ...gatewayEnv({ redis: store, simUrl, API_PORT: apiPort, SIMULATOR_PORT: simPort }),
      ALLOW_INSECURE_HTTP: 'true',
      REDIS_ALLOW_NO_AOF: 'true',
      OTP_RESEND_COOLDOWN_SECONDS: '0',
      RATE_LIMIT_PER_KEY_PER_MINUTE: '10000000',
      RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
      JOBS_KEEP_COMPLETED: '10000',
      WORKER_CONCURRENCY: String(concurrency),
      WEBHOOK_CONCURRENCY: String(concurrency),
      STATUS_WEBHOOK_URL: `http://127.0.0.1:${hookPort}/hooks`,
      STATUS_WEBHOOK_SECRET: `whsec_${Buffer.from('bench-status-webhook-secret-0123456789').toString('base64')}`,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    };
    const sim = startApp('simulator', env);
    const api = startApp('api', env);
    await waitForHttp(`${simUrl}/healthz`, sim);
    await waitForHttp(`http://127.0.0.1:${apiPort}/readyz`, api, 30_000);
    const layout = await gatewayLayout(env);
    const rc = redisClient(store);

    // (a) N OTPs queued, then the worker drains them and posts their otp.sent
    const nextPhone = phoneCounter();
    let made = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (made < n) {
          made++;
          const r = await fetch(`http://127.0.0.1:${apiPort}/v1/otp/send`, {
            method: 'POST',
            headers: { authorization: `Bearer ${BENCH_KEY}`, 'content-type': 'application/json' },
            body: JSON.stringify({ phoneNumber: nextPhone() }),
          });
          if (r.status !== 202) throw new Error(`send answered ${r.status}`);
        }
      }),
    );
    log(`${n} OTPs queued; starting the worker`);
    const worker = startApp('worker', env);
    await worker.waitForLog((l) => l.msg === 'worker started', 30_000);
    const t0 = performance.now();
    const completedKey = layout.queues[0].key('completed');
    let sendsDoneAt = null;
    const deadline = Date.now() + 120_000;
    while ((sendsDoneAt === null || received.length < n) && Date.now() < deadline) {
      if (sendsDoneAt === null && (await rc.zcard(completedKey)) >= n) sendsDoneAt = performance.now();
      await sleep(20);
    }
    if (received.length < n || sendsDoneAt === null) throw new Error(`drain: ${received.length}/${n} events`);
    const eventsDoneAt = received[n - 1].at;
    const drain = {
      otps: n,
      sendsPerSecond: round(n / ((sendsDoneAt - t0) / 1000), 1),
      eventsPerSecond: round(n / ((eventsDoneAt - t0) / 1000), 1),
      eventsDoneAfterSendsMs: round(eventsDoneAt - sendsDoneAt, 0),
    };
    log(`drain: ${JSON.stringify(drain)}`);

    // (b) events alone: N event jobs, the worker idle
    const { store: s } = await gatewayPackages();
    const { createKeyspace, createStatusEventQueue } = s;
    const queue = createStatusEventQueue(rc, createKeyspace(layout.config.redis.keyPrefix));
    received.length = 0;
    const body = JSON.stringify({ type: 'otp.sent', timestamp: new Date().toISOString(), data: { id: 'bench' } });
    const jobs = Array.from({ length: n }, (_, i) => ({
      name: 'otp.sent',
      data: { webhookId: `evt_bench_${i}`, keyName: 'bench', body },
      opts: { jobId: `evt_bench_${i}` },
    }));
    const t1 = performance.now();
    for (let i = 0; i < jobs.length; i += 500) await queue.addBulk(jobs.slice(i, i + 500));
    const deadline2 = Date.now() + 120_000;
    while (received.length < n && Date.now() < deadline2) await sleep(20);
    if (received.length < n) throw new Error(`events alone: ${received.length}/${n}`);
    const alone = { events: n, eventsPerSecond: round(n / ((received[n - 1].at - t1) / 1000), 1) };
    log(`events alone: ${JSON.stringify(alone)}`);
    await queue.close();
    return { ok: true, concurrency, drain, alone };
  } finally {
    receiver.closeAllConnections();
    receiver.close();
  }
}

if (isMain(import.meta.url)) await runBenchmark('status-events', () => statusEventsBench());
