import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard } from '../apps/dashboard/src/app.js';
import { createDashboardMetrics } from '../apps/dashboard/src/metrics.js';
import { loadConfig } from '../packages/core/src/index.js';
import {
  connectStore,
  createRedis,
  createSendQueues,
  type RedisClient,
  type SendJobData,
  type SendQueue,
  type SendQueues,
} from '../packages/store/src/index.js';
import { startApp } from './support/processes.js';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from './support/redis.js';
import { freePort, startLocalRedis } from './support/redis-server.js';

type FastifyInstance = Awaited<ReturnType<typeof buildDashboard>>;

const USER = 'admin';
const PASSWORD = 'correct-horse-battery';
const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});
const AUTH = basic(USER, PASSWORD);
const PHONE = '+33612345678';

/** An OTP id of partition 000: its jobs are on shard 0 whatever the number of shards. */
const idOnShard0 = (name: string) => `otp_000${Buffer.from(name).toString('hex').padEnd(29, '0').slice(0, 29)}`;
const sendJobData = (otpId: string): SendJobData => ({ otpId });

describe('dashboard (built in process, real Redis)', () => {
  let store: IsolatedStore;
  let redis: RedisClient;
  let queues: SendQueues;
  let queue: SendQueue;
  let app: FastifyInstance;
  const DASH_1 = idOnShard0('dash-1');
  const env = () => ({ ...store.env, DASHBOARD_USER: USER, DASHBOARD_PASSWORD: PASSWORD, NODE_ENV: 'test' });

  beforeAll(async () => {
    store = await isolatedRedis();
    const config = loadConfig(env(), 'dashboard');
    redis = connectStore(config, 'request', 'dashboard-test').redis;
    queues = createSendQueues(redis, store.ks, config.queues);
    queue = queues.shards[0] as SendQueue;
    app = await buildDashboard({ config, redis, queues: queues.shards });
    await queue.add('send', sendJobData(DASH_1), { jobId: DASH_1 });
  });

  afterAll(async () => {
    await app?.close();
    await queues?.close();
    await closeRedisClients(redis, store?.redis);
  });

  it('asks for credentials on the board, its assets and its API, with a basic-auth challenge', async () => {
    for (const path of ['/admin/queues', '/admin/queues/api/queues', '/admin/queues/static/favicon-32x32.png']) {
      const r = await app.inject({ url: path });
      expect(r.statusCode, path).toBe(401);
      expect(r.headers['www-authenticate']).toMatch(/^Basic realm=/);
      expect(r.json()).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
    }
  });

  it('refuses a wrong password, a wrong user and a malformed header', async () => {
    for (const headers of [basic(USER, 'wrong-password-123'), basic('root', PASSWORD), { authorization: 'Basic !!' }]) {
      expect((await app.inject({ url: '/admin/queues', headers })).statusCode).toBe(401);
    }
  });

  it('serves Bull Board with the right credentials, listing the send queue and its job', async () => {
    const page = await app.inject({ url: '/admin/queues', headers: AUTH });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.body).toContain('<base href="/admin/queues/"');

    const api = await app.inject({
      url: '/admin/queues/api/queues?activeQueue=otp-send-0&status=latest',
      headers: AUTH,
    });
    expect(api.statusCode).toBe(200);
    const body = api.json() as { queues: { name: string; counts: Record<string, number>; jobs: unknown[] }[] };
    expect(body.queues.map((q) => q.name)).toEqual(queues.shards.map((q) => q.name));
    expect(body.queues[0]?.name).toBe('otp-send-0');
    expect(body.queues[0]?.counts.waiting).toBe(1);
    expect(body.queues[0]?.jobs).toHaveLength(1);
  });

  it('shows job data redacted: a job that held a code or a number would show it sealed and masked', async () => {
    // Send jobs hold the OTP id only; a job shaped like older ones (a sealed code, a number) is redacted anyway.
    const legacy = idOnShard0('legacy');
    await queue.add('send', { otpId: legacy, to: PHONE, sealedCode: 'c2VhbGVk-secret-blob' } as SendJobData, {
      jobId: legacy,
    });
    const one = await app.inject({ url: `/admin/queues/api/queues/otp-send-0/${legacy}`, headers: AUTH });
    expect(one.statusCode).toBe(200);
    expect(one.body).not.toContain('c2VhbGVk-secret-blob');
    expect(one.body).not.toContain(PHONE);
    const job = (one.json() as { job: { data: Record<string, unknown> } }).job;
    expect(job.data).toEqual({ otpId: legacy, to: '+336*****678', sealedCode: '[sealed]' });
    await queue.remove(legacy);
  });

  it('refuses to add jobs or edit job data, and leaves the job as it was', async () => {
    const add = await app.inject({
      method: 'POST',
      url: '/admin/queues/api/queues/otp-send-0/add',
      headers: AUTH,
      payload: { name: 'send', data: { otpId: idOnShard0('evil') }, options: {} },
    });
    expect(add.statusCode).toBe(403);
    expect(add.json()).toEqual({ error: { code: 'forbidden', message: expect.any(String) } });
    const edit = await app.inject({
      method: 'PATCH',
      url: `/admin/queues/api/queues/otp-send-0/${DASH_1}/update-data`,
      headers: AUTH,
      payload: { jobData: { otpId: idOnShard0('other') } },
    });
    expect(edit.statusCode).toBe(403);
    expect(await queue.getJob(idOnShard0('evil'))).toBeUndefined();
    expect((await queue.getJob(DASH_1))?.data).toEqual({ otpId: DASH_1 });
    // Without credentials the refusal is the login challenge, not a hint about the route.
    expect((await app.inject({ method: 'POST', url: '/admin/queues/api/queues/otp-send-0/add' })).statusCode).toBe(401);
  });

  it('still lets an operator retry a failed job', async () => {
    const data = sendJobData(idOnShard0('failed'));
    // One attempt, so the failure is final (the gateway's workers retry with their own backoff strategy).
    await queue.add('send', data, { jobId: data.otpId, attempts: 1 });
    // Fail it the way a worker does.
    const { Worker } = await import('bullmq');
    const conn = createRedis(store.redisConfig.connection, 'worker', 'dashboard-test-worker');
    const worker = new Worker(
      queue.name,
      async (job) => {
        throw new Error(`provider refused ${job.id}`);
      },
      { connection: conn, prefix: queue.opts.prefix, autorun: false },
    );
    const failed = new Promise<void>((resolve) => worker.on('failed', (job) => job?.id === data.otpId && resolve()));
    void worker.run();
    await failed;
    await worker.close();
    conn.disconnect();
    expect(await queue.getJobState(data.otpId)).toBe('failed');

    const r = await app.inject({
      method: 'PUT',
      url: `/admin/queues/api/queues/otp-send-0/${data.otpId}/retry`,
      headers: AUTH,
    });
    expect(r.statusCode).toBeLessThan(300);
    expect(await queue.getJobState(data.otpId)).toBe('waiting');
  });

  it('answers /healthz and /readyz without credentials', async () => {
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await app.inject({ url: '/readyz' })).json()).toEqual({ status: 'ready' });
    expect((await app.inject({ url: '/' })).headers.location).toBe('/admin/queues');
    expect((await app.inject({ url: '/nope' })).json()).toEqual({
      error: { code: 'not_found', message: expect.any(String) },
    });
  });

  it('exports queue depth per state and the wait of the oldest waiting job, read at scrape time', async () => {
    await queue.obliterate({ force: true });
    const t0 = Date.now();
    const add = (name: string, opts: object) =>
      queue.add('send', sendJobData(idOnShard0(name)), { jobId: idOnShard0(name), ...opts });
    await add('old', { timestamp: t0 - 60_000 });
    await add('new', { timestamp: t0 - 10_000 });
    await add('later', { delay: 60_000 });
    const metrics = createDashboardMetrics([queue], { now: () => t0 });
    const scraped = await buildDashboard({ config: loadConfig(env(), 'dashboard'), redis, queues: [queue], metrics });
    try {
      const text = (await scraped.inject({ url: '/metrics' })).body;
      expect(text).toContain('otp_queue_jobs{queue="otp-send-0",state="waiting"} 2');
      expect(text).toContain('otp_queue_jobs{queue="otp-send-0",state="delayed"} 1');
      expect(text).toContain('otp_queue_jobs{queue="otp-send-0",state="active"} 0');
      expect(text).toContain('otp_queue_jobs{queue="otp-send-0",state="failed"} 0');
      expect(text).toContain('otp_queue_jobs{queue="otp-send-0",state="completed"} 0');
      expect(text).toContain('otp_queue_oldest_waiting_seconds{queue="otp-send-0"} 60');
      expect(text).toContain('otp_queue_scrape_ok 1');
      expect(text).toContain('process_cpu_seconds_total');
      // Gathered on scrape: a job added now shows in the next scrape.
      await add('next', {});
      expect((await scraped.inject({ url: '/metrics' })).body).toContain(
        'otp_queue_jobs{queue="otp-send-0",state="waiting"} 3',
      );
    } finally {
      await scraped.close();
    }
  });

  it('reports Redis being away: /readyz 503, and /metrics with scrape_ok 0 and no stale depths', async () => {
    const away = createRedis({ mode: 'single', url: `redis://127.0.0.1:${await freePort()}` }, 'request');
    const awayQueue = new Queue('otp-send-0', { connection: away });
    awayQueue.on('error', () => {});
    const config = loadConfig({ DASHBOARD_USER: USER, DASHBOARD_PASSWORD: PASSWORD }, 'dashboard');
    const down = await buildDashboard({ config, redis: away, queues: [awayQueue] });
    try {
      const ready = await down.inject({ url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toEqual({ error: { code: 'store_unavailable', message: 'Redis does not answer' } });
      const m = await down.inject({ url: '/metrics' });
      expect(m.statusCode).toBe(200);
      expect(m.body).toContain('otp_queue_scrape_ok 0');
      expect(m.body).not.toMatch(/^otp_queue_jobs\{/m);
    } finally {
      await down.close();
      await awayQueue.close().catch(() => {});
      away.disconnect();
    }
  });
});

describe('dashboard process (dist/main.js)', () => {
  let store: IsolatedStore;
  beforeAll(async () => {
    store = await isolatedRedis();
  });
  afterAll(() => closeRedisClients(store?.redis));

  it('refuses to start without credentials, naming both variables, with exit code 78', async () => {
    const p = startApp('dashboard', { ...store.env, DASHBOARD_PORT: String(await freePort()) });
    const code = await new Promise<number | null>((r) => p.child.once('exit', (c) => r(c)));
    expect(code).toBe(78);
    expect(p.output()).toContain('DASHBOARD_USER is required');
    expect(p.output()).toContain('DASHBOARD_PASSWORD is required');
  });

  it('refuses, in production, a Redis that may evict keys', async () => {
    const lru = await startLocalRedis({ args: ['--maxmemory-policy', 'allkeys-lru'] });
    try {
      const p = startApp('dashboard', {
        NODE_ENV: 'production',
        REDIS_URL: lru.url,
        DASHBOARD_USER: USER,
        DASHBOARD_PASSWORD: PASSWORD,
        DASHBOARD_PORT: String(await freePort()),
      });
      const code = await new Promise<number | null>((r) => p.child.once('exit', (c) => r(c)));
      expect(code).toBe(78);
      expect(p.output()).toContain('maxmemory-policy is "allkeys-lru"');
    } finally {
      await lru.stop();
    }
  });

  it('starts, logs JSON lines, serves the board behind basic auth, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const p = startApp('dashboard', {
      ...store.env,
      DASHBOARD_USER: USER,
      DASHBOARD_PASSWORD: PASSWORD,
      DASHBOARD_PORT: String(port),
    });
    try {
      const started = await p.waitForLog((l) => l.msg === 'dashboard started');
      const shards = Number(store.env.SEND_QUEUE_SHARDS ?? 1);
      expect(started).toMatchObject({
        port,
        path: '/admin/queues',
        // every send queue shard, and the status events (failed deliveries shown)
        queues: [...Array.from({ length: shards }, (_, i) => `otp-send-${i}`), 'otp-events'],
      });
      const base = `http://127.0.0.1:${port}`;
      expect((await fetch(`${base}/admin/queues`)).status).toBe(401);
      expect((await fetch(`${base}/admin/queues`, { headers: AUTH })).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      await p.waitForLog((l) => l.msg === 'dashboard login refused');
      expect(p.output()).not.toContain(PASSWORD);
      expect(await p.stop('SIGTERM')).toBe(0);
      expect(p.logs().some((l) => l.msg === 'dashboard stopped')).toBe(true);
    } finally {
      await p.stop('SIGKILL');
    }
  });
});
