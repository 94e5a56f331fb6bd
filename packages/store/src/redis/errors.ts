/**
 * Errors that Redis clients and BullMQ queues emit outside any command (a reconnect failing, a queue's
 * connection dropping). Commands surface their own errors; these used to be dropped so that ioredis would not
 * print them to stderr. Now they go to one sink that each process installs: a log line at most every
 * `everyMs` per source, saying how many were not logged, and a counter of every one.
 */
/**
 * `redis`, `queue`: a client's or a queue's error outside any command; `request`: a request's store step that
 * failed (answered 503): Redis refusing writes (OOM under noeviction, READONLY), a missing ACL permission, a
 * timeout, a bug. Without it, a Redis that answers PING but refuses every write gave 503s and not one line.
 */
export type ErrorSource = 'redis' | 'queue' | 'request';

export type ErrorSink = (source: ErrorSource, err: unknown) => void;

let sink: ErrorSink = () => {};

/** Where background errors of the store's clients and queues go (one per process; tests may leave none). */
export function setStoreErrorSink(next: ErrorSink): void {
  sink = next;
}

/** Called by the store's clients and queues for an error outside any command. */
export function reportStoreError(source: ErrorSource, err: unknown): void {
  sink(source, err);
}

export interface ErrorLog {
  error(obj: Record<string, unknown>, msg: string): void;
}

/**
 * A sink that counts every error (`count`, e.g. a Prometheus counter's inc) and logs the first of each source,
 * then at most one every `everyMs` with the number suppressed since: a Redis down for an hour makes a few hundred
 * lines, not millions.
 */
export function rateLimitedErrorSink(
  log: ErrorLog,
  count: (source: ErrorSource) => void,
  opts: { everyMs?: number; now?: () => number } = {},
): ErrorSink {
  const everyMs = opts.everyMs ?? 10_000;
  const now = opts.now ?? Date.now;
  const last = new Map<ErrorSource, { at: number; suppressed: number }>();
  return (source, err) => {
    count(source);
    const t = now();
    const seen = last.get(source);
    if (seen && t - seen.at < everyMs) {
      seen.suppressed++;
      return;
    }
    last.set(source, { at: t, suppressed: 0 });
    const message = err instanceof Error ? err.message : String(err);
    log.error({ source, err: { message }, suppressed: seen?.suppressed ?? 0 }, `${source} error`);
  };
}
