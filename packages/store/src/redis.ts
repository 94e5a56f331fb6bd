import { Redis, type RedisOptions } from 'ioredis';

/**
 * How a connection behaves when Redis is away:
 * - `request`: fail fast (no offline queue, 700 ms command timeout) so the API answers 503 instead of hanging;
 * - `worker`: wait and retry forever (BullMQ workers need maxRetriesPerRequest null).
 */
export type ConnectionRole = 'request' | 'worker';

/** Opens an ioredis connection for `role`; reconnects by itself with a capped backoff. */
export function createRedis(url: string, role: ConnectionRole, name?: string): Redis {
  const common: RedisOptions = {
    connectionName: name,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    enableAutoPipelining: role === 'request',
  };
  const opts: RedisOptions =
    role === 'request'
      ? { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 700, connectTimeout: 1000 }
      : { ...common, maxRetriesPerRequest: null, enableReadyCheck: true };
  const redis = new Redis(url, opts);
  // Errors surface through commands and readiness; without a listener ioredis would log them to stderr.
  redis.on('error', () => {});
  return redis;
}

/** Readiness: true when Redis answers a PING within `timeoutMs` (a hung Redis is not ready). */
export async function redisAnswers(redis: Pick<Redis, 'ping'>, timeoutMs = 800): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const pong = await Promise.race([
      redis.ping(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
      }),
    ]);
    return pong === 'PONG';
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
