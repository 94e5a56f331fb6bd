import {
  checkRedisConfig,
  type ErrorSource,
  type RedisCheckLog,
  type RedisClient,
  rateLimitedErrorSink,
  setStoreErrorSink,
  watchRedisConfig,
} from '@otp-gateway/store';

/**
 * For a process's entry point: a configuration the process must not run with (ConfigError from loadConfig,
 * RedisConfigError from checkRedisConfig) is printed as one clear message and ends the process with 78
 * (EX_CONFIG). Anything else is thrown on.
 */
export function refuseToStart(app: string, e: unknown): never {
  if (e instanceof Error && (e.name === 'ConfigError' || e.name === 'RedisConfigError')) {
    process.stderr.write(`otp-gateway ${app}: ${e.message}\n`);
    process.exit(78);
  }
  throw e;
}

/** What guardProcess logs with: pino's and Fastify's loggers fit. */
export interface GuardLog {
  error(obj: Record<string, unknown>, msg: string): void;
  fatal(obj: Record<string, unknown>, msg: string): void;
}

/**
 * For a process's entry point, once its logger exists:
 * - background errors of Redis clients and queues (reconnects failing, ...) are counted (`countStoreError`, the
 *   process's `otp_store_errors_total{source}`) and logged at most every 10 s per source (see rateLimitedErrorSink);
 *   the clients reconnect by themselves, so these are recoverable;
 * - an unhandled rejection or an uncaught exception is a bug whose state cannot be trusted: it is logged as
 *   fatal, with its stack, and the process exits 1 for its supervisor to restart it (in-flight sends are
 *   resumed by another worker after their lease; the API answers nothing it has not stored).
 */
export function guardProcess(app: string, log: GuardLog, countStoreError: (source: ErrorSource) => void): void {
  setStoreErrorSink(rateLimitedErrorSink(log, countStoreError));
  const die = (kind: string) => (e: unknown) => {
    const err = e instanceof Error ? { type: e.name, message: e.message, stack: e.stack } : { message: String(e) };
    log.fatal({ app, err }, `${kind}: exiting`);
    process.exit(1);
  };
  process.on('unhandledRejection', die('unhandled rejection'));
  process.on('uncaughtException', die('uncaught exception'));
}

/**
 * For a process's entry point: the Redis configuration (noeviction, AOF) checked now, a refusal ending the process
 * (refuseToStart), and again whenever the connection is ready anew (watchRedisConfig: a Redis unreachable now, a
 * reconnect, a failover).
 */
export async function checkRedisNowAndOnReady(
  app: string,
  redis: RedisClient,
  opts: {
    env: 'development' | 'production' | 'test';
    allowNoAof: boolean;
    log: RedisCheckLog & GuardLog;
    readyTimeoutMs: number;
  },
): Promise<void> {
  const { readyTimeoutMs, ...check } = opts;
  const atStart = await checkRedisConfig(redis, { ...check, readyTimeoutMs }).catch((e) => refuseToStart(app, e));
  watchRedisConfig(redis, check, atStart, (e) => refuseToStart(app, e));
}

/**
 * The process's `otp_store_errors_total{source}` (what guardProcess's `countStoreError` counts), for a prom-client
 * Counter: `new Counter({ ...STORE_ERRORS_METRIC, registers })`.
 */
export const STORE_ERRORS_METRIC = Object.freeze({
  name: 'otp_store_errors_total',
  help: 'Store errors by source: redis and queue clients outside any command (reconnects failing, ...), request steps answered 503; logged at most every 10 s per source',
  labelNames: ['source'] as const,
});
