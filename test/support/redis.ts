import { Redis } from 'ioredis';
import { inject } from 'vitest';

let counter: Redis | undefined;

/**
 * A Redis database of its own for the calling test file, flushed first, so files can run in parallel.
 * Returns its URL (with the db number) and a client on it.
 */
export async function isolatedRedis(): Promise<{ url: string; redis: Redis }> {
  const base = inject('redisUrl');
  counter ??= new Redis(base, { lazyConnect: false });
  const n = await counter.incr('otp-tests:db-counter');
  const db = 1 + ((n - 1) % 126);
  const url = `${base.replace(/\/\d*$/, '')}/${db}`;
  const redis = new Redis(url);
  await redis.flushdb();
  return { url, redis };
}

/** Closes the clients isolatedRedis opened. */
export async function closeRedisClients(...clients: (Redis | undefined)[]): Promise<void> {
  await Promise.all(clients.map((c) => c?.quit().catch(() => c.disconnect())));
}
