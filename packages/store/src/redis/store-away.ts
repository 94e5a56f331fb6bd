import { setTimeout } from 'node:timers/promises';

/**
 * Errors that say the store is away for now (a failover, a restart, a lost connection or slot map): worth waiting
 * out. Any other (a script's error, a bug) fails the same way on every try.
 */
const AWAY =
  /^(READONLY|CLUSTERDOWN|TRYAGAIN|LOADING|MASTERDOWN)\b|Connection is closed|Stream isn't writeable|Command timed out|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Failed to refresh slots cache|None of startup nodes|Too many Cluster redirections/;

export const isStoreAway = (err: unknown): boolean => err instanceof Error && AWAY.test(err.message);

/**
 * Runs `step`, and again after each of `waitsMs` while it fails with the store away. `beforeWait` hears each such
 * failure before its wait and answers whether to wait (false gives up). Any other error, or the last try's, is thrown.
 */
export async function retryWhileStoreAway<T>(
  step: () => Promise<T>,
  waitsMs: readonly number[],
  beforeWait?: (err: unknown, waitMs: number) => boolean,
): Promise<T> {
  for (const wait of waitsMs) {
    try {
      return await step();
    } catch (err) {
      if (!isStoreAway(err) || beforeWait?.(err, wait) === false) throw err;
      await setTimeout(wait);
    }
  }
  return step();
}
