import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard } from '../apps/dashboard/src/app.js';
import { createDashboardMetrics } from '../apps/dashboard/src/metrics.js';
import { deriveKeys, encryptCode, loadConfig, QUEUES, type SendJobData } from '../packages/core/src/index.js';
import { createRedis } from '../packages/store/src/index.js';
import { startApp } from './support/processes.js';
import { closeRedisClients, isolatedRedis } from './support/redis.js';
import { freePort, startLocalRedis } from './support/redis-server.js';

type FastifyInstance = Awaited<ReturnType<typeof buildDashboard>>;

const USER = 'admin';
const PASSWORD = 'correct-horse-battery';
const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});
const AUTH = basic(USER, PASSWORD);
const PHONE = '+33612345678';

function sendJobData(otpId: string): SendJobData {
  const keys = deriveKeys('test-secret-0123456789abcdefghijklmnopqrstuvwxyz');
  return {
    otpId,
    to: PHONE,
    locale: 'fr',
    sealedCode: encryptCode(keys, otpId, '482913'),
    expiresAt: Date.now() + 600_000,
    callingCode: '33',
  };
}

describe('dashboard (built in process, real Redis)', () => {
  let url: string;
  let admin: Redis;
  let redis: Redis;
  let queue: Queue;
  let app: FastifyInstance;
  let sealed: string;

  beforeAll(async () => {
    ({ url, redis: admin } = await isolatedRedis());
    redis = createRedis(url, 'request', 'dashboard-test');
    queue = new Queue(QUEUES.send, { connection: redis });
    const config = loadConfig(
      { REDIS_URL: url, DASHBOARD_USER: USER, DASHBOARD_PASSWORD: PASSWORD, NODE_ENV: 'test' },
      'dashboard',
    );
    app = await buildDashboard({ config, redis, queues: [queue] });
    const data = sendJobData('otp_dash_1');
    sealed = data.sealedCode;
    await queue.add('send', data, { jobId: data.otpId });
  });

  afterAll(async () => {
    await app?.close();
    await queue?.close();
    await closeRedisClients(redis, admin);
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

    const api = await app.inject({ url: '/admin/queues/api/queues?activeQueue=otp-send&status=latest', headers: AUTH });
    expect(api.statusCode).toBe(200);
    const body = api.json() as { queues: { name: string; counts: Record<string, number>; jobs: unknown[] }[] };
    expect(body.queues.map((q) => q.name)).toEqual(['otp-send']);
    expect(body.queues[0]?.counts.waiting).toBe(1);
    expect(body.queues[0]?.jobs).toHaveLength(1);
  });

  it('never shows the sealed code or the full phone number in job data', async () => {
    const list = await app.inject({
      url: '/admin/queues/api/queues?activeQueue=otp-send&status=latest',
      headers: AUTH,
    });
    const one = await app.inject({ url: '/admin/queues/api/queues/otp-send/otp_dash_1', headers: AUTH });
    expect(one.statusCode).toBe(200);
    for (const r of [list, one]) {
      expect(r.body).not.toContain(sealed);
      expect(r.body).not.toContain(PHONE);
      expect(r.body).not.toContain('482913');
    }
    const job = (one.json() as { job: { data: Record<string, unknown> } }).job;
    expect(job.data).toMatchObject({
      otpId: 'otp_dash_1',
      to: '+336*****678',
      sealedCode: '[sealed]',
      callingCode: '33',
    });
  });

  it('refuses to add jobs or edit job data, and leaves the job as it was', async () => {
    const add = await app.inject({
      method: 'POST',
      url: '/admin/queues/api/queues/otp-send/add',
      headers: AUTH,
      payload: { name: 'send', data: { ...sendJobData('otp_dash_evil'), to: '+15005550006' }, options: {} },
    });
    expect(add.statusCode).toBe(403);
    expect(add.json()).toEqual({ error: { code: 'forbidden', message: expect.any(String) } });
    const edit = await app.inject({
      method: 'PATCH',
      url: '/admin/queues/api/queues/otp-send/otp_dash_1/update-data',
      headers: AUTH,
      payload: { jobData: { to: '+15005550006' } },
    });
    expect(edit.statusCode).toBe(403);
    expect(await queue.getJob('otp_dash_evil')).toBeUndefined();
    expect((await queue.getJob('otp_dash_1'))?.data.to).toBe(PHONE);
    // Without credentials the refusal is the login challenge, not a hint about the route.
    expect((await app.inject({ method: 'POST', url: '/admin/queues/api/queues/otp-send/add' })).statusCode).toBe(401);
  });

  it('still lets an operator retry a failed job', async () => {
    const data = sendJobData('otp_dash_failed');
    await queue.add('send', data, { jobId: data.otpId });
    // Fail it the way a worker does.
    const { Worker } = await import('bullmq');
    const conn = createRedis(url, 'worker', 'dashboard-test-worker');
    const worker = new Worker(
      QUEUES.send,
      async (job) => {
        throw new Error(`provider refused ${job.id}`);
      },
      { connection: conn, autorun: false },
    );
    const failed = new Promise<void>((resolve) => worker.on('failed', (job) => job?.id === data.otpId && resolve()));
    void worker.run();
    await failed;
    await worker.close();
    conn.disconnect();
    expect(await queue.getJobState(data.otpId)).toBe('failed');

    const r = await app.inject({
      method: 'PUT',
      url: `/admin/queues/api/queues/otp-send/${data.otpId}/retry`,
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
    await admin.flushdb();
    const t0 = Date.now();
    await queue.add('send', sendJobData('otp_old'), { jobId: 'otp_old', timestamp: t0 - 60_000 });
    await queue.add('send', sendJobData('otp_new'), { jobId: 'otp_new', timestamp: t0 - 10_000 });
    await queue.add('send', sendJobData('otp_later'), { jobId: 'otp_later', delay: 60_000 });
    const metrics = createDashboardMetrics([queue], { now: () => t0 });
    const config = loadConfig({ REDIS_URL: url, DASHBOARD_USER: USER, DASHBOARD_PASSWORD: PASSWORD }, 'dashboard');
    const scraped = await buildDashboard({ config, redis, queues: [queue], metrics });
    try {
      const text = (await scraped.inject({ url: '/metrics' })).body;
      expect(text).toContain('otp_queue_jobs{queue="otp-send",state="waiting"} 2');
      expect(text).toContain('otp_queue_jobs{queue="otp-send",state="delayed"} 1');
      expect(text).toContain('otp_queue_jobs{queue="otp-send",state="active"} 0');
      expect(text).toContain('otp_queue_jobs{queue="otp-send",state="failed"} 0');
      expect(text).toContain('otp_queue_jobs{queue="otp-send",state="completed"} 0');
      expect(text).toContain('otp_queue_oldest_waiting_seconds{queue="otp-send"} 60');
      expect(text).toContain('otp_queue_scrape_ok 1');
      expect(text).toContain('process_cpu_seconds_total');
      // Gathered on scrape: a job added now shows in the next scrape.
      await queue.add('send', sendJobData('otp_next'), { jobId: 'otp_next' });
      expect((await scraped.inject({ url: '/metrics' })).body).toContain(
        'otp_queue_jobs{queue="otp-send",state="waiting"} 3',
      );
    } finally {
      await scraped.close();
    }
  });

  it('reports Redis being away: /readyz 503, and /metrics with scrape_ok 0 and no stale depths', async () => {
    const away = createRedis(`redis://127.0.0.1:${await freePort()}`, 'request');
    const awayQueue = new Queue(QUEUES.send, { connection: away });
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
  let url: string;
  let admin: Redis;
  beforeAll(async () => {
    ({ url, redis: admin } = await isolatedRedis());
  });
  afterAll(() => closeRedisClients(admin));

  it('refuses to start without credentials, naming both variables, with exit code 78', async () => {
    const p = startApp('dashboard', { REDIS_URL: url, DASHBOARD_PORT: String(await freePort()) });
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
      REDIS_URL: url,
      DASHBOARD_USER: USER,
      DASHBOARD_PASSWORD: PASSWORD,
      DASHBOARD_PORT: String(port),
    });
    try {
      const started = await p.waitForLog((l) => l.msg === 'dashboard started');
      expect(started).toMatchObject({ port, path: '/admin/queues', queues: ['otp-send'] });
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
