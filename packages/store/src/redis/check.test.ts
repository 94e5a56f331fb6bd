import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type LocalRedis, startLocalRedis } from '../../../../test/support/redis-server.js';
import { checkRedisConfig, RedisConfigError, watchRedisConfig } from './check.js';
import { createRedis, type RedisClient } from './connection.js';

function captureLog() {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  return { lines, log: { warn: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }) } };
}

describe('checkRedisConfig against a real redis-server', () => {
  const servers: LocalRedis[] = [];
  const clients: RedisClient[] = [];
  let evicting: RedisClient;
  let durable: Redis;
  let noConfig: Redis;

  beforeAll(async () => {
    const [a, b, c] = await Promise.all([
      startLocalRedis({ args: ['--maxmemory-policy', 'allkeys-lru'] }),
      startLocalRedis({ args: ['--appendonly', 'yes'] }),
      // What managed Redis services do: CONFIG renamed away.
      startLocalRedis({ args: ['--rename-command', 'CONFIG', ''] }),
    ]);
    servers.push(a, b, c);
    evicting = createRedis({ mode: 'single', url: a.url }, 'request', 'check-test');
    durable = new Redis(b.url);
    noConfig = new Redis(c.url);
    clients.push(evicting, durable, noConfig);
  });

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('refuses an evicting maxmemory-policy in production, naming the policy', async () => {
    const { log } = captureLog();
    const err = await checkRedisConfig(evicting, { env: 'production', log }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisConfigError);
    expect((err as Error).message).toContain('allkeys-lru');
    expect((err as Error).message).toContain('noeviction');
  });

  it('only warns about an evicting policy in development and test, and about persistence being off', async () => {
    for (const env of ['development', 'test'] as const) {
      const { lines, log } = captureLog();
      const report = await checkRedisConfig(evicting, { env, log });
      expect(report).toMatchObject({ readable: true, maxmemoryPolicy: 'allkeys-lru', persistent: false });
      expect(lines.map((l) => l.msg).join('\n')).toMatch(/maxmemory-policy is "allkeys-lru"/);
      expect(lines.some((l) => /persistence is off/.test(l.msg))).toBe(true);
    }
  });

  it('regression: refuses a Redis without AOF in production unless REDIS_ALLOW_NO_AOF, and warns elsewhere', async () => {
    const server = await startLocalRedis({ args: ['--appendonly', 'no', '--save', '3600 1'] });
    servers.push(server);
    const snapshotsOnly = new Redis(server.url);
    clients.push(snapshotsOnly);
    const refused = await checkRedisConfig(snapshotsOnly, { env: 'production', log: captureLog().log }).catch(
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(RedisConfigError);
    expect((refused as Error).message).toMatch(/appendonly is "no".*REDIS_ALLOW_NO_AOF/);
    for (const [env, allowNoAof] of [
      ['production', true],
      ['development', false],
    ] as const) {
      const { lines, log } = captureLog();
      const report = await checkRedisConfig(snapshotsOnly, { env, log, allowNoAof });
      expect(report).toMatchObject({ readable: true, appendonly: 'no', persistent: true });
      expect(lines.map((l) => l.msg)).toEqual([expect.stringContaining('appendonly is "no"')]);
    }
  });

  it('says nothing about a noeviction Redis with AOF on, even in production', async () => {
    const { lines, log } = captureLog();
    const report = await checkRedisConfig(durable, { env: 'production', log });
    expect(report).toEqual({
      readable: true,
      maxmemoryPolicy: 'noeviction',
      appendonly: 'yes',
      save: '',
      persistent: true,
    });
    expect(lines).toEqual([]);
  });

  it('tolerates CONFIG being disabled (managed Redis) with one warning, even in production', async () => {
    const { lines, log } = captureLog();
    const report = await checkRedisConfig(noConfig, { env: 'production', log });
    expect(report.readable).toBe(false);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.msg).toMatch(/cannot read the redis configuration/);
    expect(String(lines[0]?.obj.reason)).toMatch(/unknown command/i);
  });

  it('warns and goes on when Redis is unreachable at start', async () => {
    const { lines, log } = captureLog();
    const away = createRedis({ mode: 'single', url: `redis://127.0.0.1:${await freePort()}` }, 'request');
    clients.push(away);
    const report = await checkRedisConfig(away, { env: 'production', log, readyTimeoutMs: 300 });
    expect(report.readable).toBe(false);
    expect(lines[0]?.msg).toMatch(/unreachable/);
  });

  it('regression: a Redis unreachable at start is checked once it answers, and refused as it would have been then', async () => {
    const { log } = captureLog();
    const port = await freePort();
    const late = createRedis({ mode: 'single', url: `redis://127.0.0.1:${port}` }, 'worker');
    clients.push(late);
    const atStart = await checkRedisConfig(late, { env: 'production', log, readyTimeoutMs: 300 });
    const refused = new Promise<unknown>((r) =>
      watchRedisConfig(late, { env: 'production', log: { ...log, error: () => {} } }, atStart, r),
    );
    // the Redis comes up without AOF: the check at start would have refused it
    servers.push(await startLocalRedis({ port, args: ['--appendonly', 'no'] }));
    expect(await refused).toBeInstanceOf(RedisConfigError);
  });

  it('a Redis found unsafe after a reconnect (replaced, failed over) is logged as an error, not refused', async () => {
    const server = await startLocalRedis({ args: ['--appendonly', 'yes'] });
    servers.push(server);
    const conn = createRedis({ mode: 'single', url: server.url }, 'worker');
    clients.push(conn);
    const { log } = captureLog();
    const atStart = await checkRedisConfig(conn, { env: 'production', log });
    expect(atStart.readable).toBe(true);
    const errors: string[] = [];
    let refusedWith: unknown = null;
    watchRedisConfig(conn, { env: 'production', log: { ...log, error: (_o, m) => errors.push(m) } }, atStart, (e) => {
      refusedWith = e;
    });
    await conn.config('SET', 'appendonly', 'no');
    conn.disconnect(true);
    for (let i = 0; i < 50 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(errors).toEqual(['redis configuration unsafe after a reconnect or a failover: fix it on that server']);
    expect(refusedWith).toBeNull();
  });
});
