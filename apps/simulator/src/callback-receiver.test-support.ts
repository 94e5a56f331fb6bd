import formbody from '@fastify/formbody';
import Fastify, { type FastifyInstance } from 'fastify';

/** One POST a test receiver got. */
export interface Received {
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Record<string, unknown>;
}

/**
 * A callback receiver on a free 127.0.0.1 port that records what it is sent (tests only).
 * `next(n)` resolves once `n` requests have arrived.
 */
export async function startReceiver(): Promise<{
  url: string;
  received: Received[];
  next(n: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}> {
  const app: FastifyInstance = Fastify();
  await app.register(formbody);
  const received: Received[] = [];
  const waiters: (() => void)[] = [];
  app.post('/*', async (req) => {
    received.push({ url: req.url, headers: req.headers, body: req.body as Record<string, unknown> });
    for (const w of waiters.splice(0)) w();
    return { ok: true };
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    received,
    next(n, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`got ${received.length} of ${n} callbacks`)), timeoutMs);
        const check = () => {
          if (received.length >= n) {
            clearTimeout(timer);
            resolve(received.slice(0, n));
          } else waiters.push(check);
        };
        check();
      });
    },
    close: () => app.close(),
  };
}
