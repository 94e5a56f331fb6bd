/**
 * Failed dashboard logins per client address, in fixed 15-minute windows opened by a client's first failure:
 * past the limit, that client's logins are refused (429) without checking the credentials, until its window
 * ends. A correct login does not clear the count: failures only age out with their window. (It used to: behind
 * one address (NAT, a proxy without TRUST_PROXY), the board's own polling, a correct login every few seconds,
 * let a guesser sharing the address make limit - 1 guesses between two polls, all day, never blocked.) In memory:
 * the dashboard runs as one process, and a restart forgetting the counts costs an attacker a restart's worth of
 * guesses at most. The table is bounded: past MAX_CLIENTS, the oldest window goes.
 */
export interface LoginThrottle {
  /** Milliseconds until `ip` may try again, or 0 when it may try now. */
  blockedFor(ip: string): number;
  failed(ip: string): void;
}

export const LOGIN_WINDOW_MS = 15 * 60_000;
const MAX_CLIENTS = 10_000;

export function createLoginThrottle(maxFailures: number, now: () => number = Date.now): LoginThrottle {
  const windows = new Map<string, { failures: number; until: number }>();
  const current = (ip: string) => {
    const w = windows.get(ip);
    if (w && w.until <= now()) {
      windows.delete(ip);
      return undefined;
    }
    return w;
  };
  return {
    blockedFor(ip) {
      const w = current(ip);
      return w && w.failures >= maxFailures ? w.until - now() : 0;
    },
    failed(ip) {
      const w = current(ip);
      if (w) w.failures++;
      else {
        if (windows.size >= MAX_CLIENTS) windows.delete(windows.keys().next().value as string);
        windows.set(ip, { failures: 1, until: now() + LOGIN_WINDOW_MS });
      }
    },
  };
}
