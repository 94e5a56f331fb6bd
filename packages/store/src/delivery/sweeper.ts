import { randomBytes, randomInt } from 'node:crypto';
import { PARTITIONS } from '../keyspace.js';
import { type SweepDeps, type SweepReport, sweepDue } from './sweep.js';

/** The worker's sweep, running: `stop` ends the round under way after the entry it is handling. */
export interface Sweeper {
  /**
   * Stops the rounds; resolves once the round under way (if any) has ended, after the entry it is handling. A
   * Redis that does not answer holds that entry, and this promise, as long as it does not: bound the wait.
   */
  stop(): Promise<void>;
}

/**
 * Runs the sweep (sweep.ts) every `everyMs`, one round per period whatever the number of workers: the worker that
 * takes the period's lock (it expires with the period) sweeps. Errors are reported, never thrown.
 *
 * A round reads the partitions spread over the first half of the period, and ends when the lock does (a backlog
 * after an outage is worked through over several rounds, not by two workers at once). It starts at a random
 * partition, so a round cut short does not always leave out the same ones.
 */
export function startSweeper(
  deps: SweepDeps,
  opts: { everyMs?: number; onRound?: (r: SweepReport) => void; onError?: (e: unknown) => void } = {},
): Sweeper {
  const lock = deps.ks.key('sweep', 'lock');
  const token = randomBytes(8).toString('hex');
  const everyMs = opts.everyMs ?? 5000;
  const lockMs = Math.max(1000, everyMs - 200);
  // A round waiting on a Redis that does not answer (worker connections wait, they do not fail) must not stop
  // this process from sweeping for good: after a minute a new round starts anyway.
  let runningSince = 0;
  let running: Promise<void> = Promise.resolve();
  const stopping = new AbortController();
  const round = async (started: number) => {
    try {
      if ((await deps.redis.set(lock, token, 'PX', lockMs, 'NX')) !== 'OK') return;
      // stopped, or the lock taken too late to use: no round (the lock lapses on its own)
      const budgetMs = lockMs - (Date.now() - started);
      if (stopping.signal.aborted || budgetMs <= 0) return;
      const report = await sweepDue(deps, {
        spreadMs: Math.min(everyMs, lockMs) / 2,
        budgetMs,
        startAt: randomInt(PARTITIONS),
        signal: stopping.signal,
      });
      opts.onRound?.(report);
    } catch (e) {
      opts.onError?.(e);
    } finally {
      if (runningSince === started) runningSince = 0;
    }
  };
  const timer = setInterval(() => {
    if (stopping.signal.aborted || (runningSince > 0 && Date.now() - runningSince < 60_000)) return;
    runningSince = Date.now();
    running = round(runningSince);
  }, everyMs);
  timer.unref();
  return {
    stop: () => {
      clearInterval(timer);
      stopping.abort();
      return running;
    },
  };
}
