import type { Redis } from 'ioredis';
import { masters, type RedisClient, waitReady } from './connection.js';

/** Where a warning goes: pino's and Fastify's loggers fit. */
export interface RedisCheckLog {
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** What checkRedisConfig found. `null` fields could not be read (CONFIG disabled, or Redis unreachable). */
export interface RedisConfigReport {
  /** False when CONFIG GET was refused or Redis did not answer: nothing below was checked. */
  readonly readable: boolean;
  readonly maxmemoryPolicy: string | null;
  readonly appendonly: string | null;
  readonly save: string | null;
  /** AOF or RDB snapshots are on (null: unknown). */
  readonly persistent: boolean | null;
}

/** A Redis that would lose queued sends or live OTPs under memory pressure, refused in production. */
export class RedisConfigError extends Error {
  override readonly name = 'RedisConfigError';
}

/**
 * Checks the Redis settings the gateway relies on, once at start, on every master of a cluster:
 * - `maxmemory-policy` must be `noeviction`: any other policy lets Redis drop BullMQ's keys or live OTPs
 *   (the `volatile-*` ones evict exactly the keys with a TTL, which OTPs have). Throws RedisConfigError
 *   in production; warns in development and test.
 * - persistence off (`appendonly no` and `save ""`) warns: a restart loses queued sends and live OTPs.
 * - AOF off (`appendonly no`) is refused in production unless `allowNoAof` (REDIS_ALLOW_NO_AOF), and warned about
 *   elsewhere: RDB snapshots alone lose every OTP accepted since the last one when Redis restarts. With AOF and
 *   `appendfsync everysec`, a crash loses about a second of writes at most.
 *
 * A managed Redis that disables or renames CONFIG gets one warning and no check. Waits up to
 * `readyTimeoutMs` (5 s) for the connection; a Redis still unreachable then is warned about and left
 * to the readiness probe.
 */
export async function checkRedisConfig(
  redis: RedisClient,
  opts: {
    env: 'development' | 'production' | 'test';
    log: RedisCheckLog;
    readyTimeoutMs?: number;
    /** REDIS_ALLOW_NO_AOF: accept a Redis without AOF in production (a warning instead). */
    allowNoAof?: boolean;
  },
): Promise<RedisConfigReport> {
  const unread: RedisConfigReport = {
    readable: false,
    maxmemoryPolicy: null,
    appendonly: null,
    save: null,
    persistent: null,
  };
  if (!(await waitReady(redis, opts.readyTimeoutMs ?? 5000))) {
    opts.log.warn({ status: redis.status }, 'redis unreachable at start; its configuration was not checked');
    return unread;
  }
  // Every master holds OTPs and jobs: each must be safe. A node that answers worse than another decides.
  let settings: Map<string, string>;
  try {
    settings = worst(
      await Promise.all(masters(redis).map((m) => configGet(m, ['maxmemory-policy', 'appendonly', 'save']))),
    );
  } catch (e) {
    opts.log.warn(
      { reason: e instanceof Error ? e.message : String(e) },
      'cannot read the redis configuration (CONFIG GET refused, as on some managed Redis): make sure maxmemory-policy is noeviction and persistence is on',
    );
    return unread;
  }
  const policy = settings.get('maxmemory-policy') ?? null;
  const appendonly = settings.get('appendonly') ?? null;
  const save = settings.get('save') ?? null;
  if (policy === null) {
    opts.log.warn({}, 'redis did not report maxmemory-policy: make sure it is noeviction');
  } else if (policy !== 'noeviction') {
    const message = `Redis maxmemory-policy is "${policy}": it must be "noeviction", or Redis may evict queued send jobs and live OTPs (set maxmemory-policy noeviction in redis.conf or with CONFIG SET)`;
    if (opts.env === 'production') throw new RedisConfigError(message);
    opts.log.warn({ maxmemoryPolicy: policy }, `${message}; refused in production`);
  }
  const persistent = appendonly === null || save === null ? null : appendonly === 'yes' || save.trim() !== '';
  if (persistent === false) {
    opts.log.warn(
      { appendonly, save },
      'redis persistence is off (appendonly no, save ""): a redis restart loses queued sends and live OTPs; run it with --appendonly yes',
    );
  }
  if (appendonly === 'no') {
    const message =
      'Redis appendonly is "no": a Redis restart loses every OTP accepted and every send queued since its last RDB snapshot (run it with --appendonly yes --appendfsync everysec, or set REDIS_ALLOW_NO_AOF=true to accept that)';
    if (opts.env === 'production' && !opts.allowNoAof) throw new RedisConfigError(message);
    opts.log.warn({ appendonly, save }, opts.env === 'production' ? message : `${message}; refused in production`);
  }
  return { readable: true, maxmemoryPolicy: policy, appendonly, save, persistent };
}

/**
 * Checks the configuration again each time the connection is ready anew, after the check at start (whose report
 * is `atStart`): a Redis that was unreachable then, a reconnect to a Redis replaced meanwhile, a Sentinel
 * failover to another primary. When the check at start could not run, a Redis found unsafe now is refused as it
 * would have been then (`refuse`: the process's exit). Once it has run, an unsafe Redis met later is logged as an
 * error each time (stopping every process during a failover would turn it into an outage): the operator fixes
 * that primary's configuration.
 */
export function watchRedisConfig(
  redis: RedisClient,
  opts: {
    env: 'development' | 'production' | 'test';
    log: RedisCheckLog & { error(obj: Record<string, unknown>, msg: string): void };
    allowNoAof?: boolean;
  },
  atStart: RedisConfigReport,
  refuse: (err: unknown) => void,
): void {
  let checked = atStart.readable;
  redis.on('ready', () => {
    checkRedisConfig(redis, { ...opts, readyTimeoutMs: 1000 }).then(
      (report) => {
        if (report.readable) checked = true;
      },
      (err: unknown) => {
        if (!checked) return refuse(err);
        opts.log.error(
          { reason: err instanceof Error ? err.message : String(err) },
          'redis configuration unsafe after a reconnect or a failover: fix it on that server',
        );
      },
    );
  });
}

async function configGet(redis: Redis, names: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of names) {
    const reply = (await redis.call('CONFIG', 'GET', name)) as unknown;
    // RESP2 answers a flat [name, value] list; RESP3 clients may get a map.
    if (Array.isArray(reply)) {
      for (let i = 0; i + 1 < reply.length; i += 2) out.set(String(reply[i]), String(reply[i + 1]));
    } else if (reply && typeof reply === 'object') {
      for (const [k, v] of Object.entries(reply)) out.set(k, String(v));
    }
  }
  return out;
}

/** Of several masters' settings, the one to judge by: an evicting policy, or persistence off, anywhere wins. */
function worst(all: Map<string, string>[]): Map<string, string> {
  return (
    all.find((m) => m.get('maxmemory-policy') !== undefined && m.get('maxmemory-policy') !== 'noeviction') ??
    all.find((m) => m.get('appendonly') === 'no' && (m.get('save') ?? '').trim() === '') ??
    all.find((m) => m.get('appendonly') === 'no') ??
    all[0] ??
    new Map()
  );
}
