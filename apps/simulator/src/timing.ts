import type { FastifyReply } from 'fastify';

/**
 * Sleeps and timers that the app can cut short at close, so a hanging request or a pending delivery
 * report never holds the process (or a test) open.
 */
export interface Timing {
  /**
   * Waits `ms`. Resolves true when the time ran out, false when cut short: the client went away
   * (`reply` given) or the app is closing.
   */
  sleep(ms: number, reply?: FastifyReply): Promise<boolean>;
  /** Runs `fn` after `ms` unless cancelled first. */
  later(ms: number, fn: () => void): void;
  /** Cancels pending timers (reset); sleeps go on. */
  cancelTimers(): void;
  /** Cuts every sleep short and cancels every timer (close). */
  closeAll(): void;
}

export function createTiming(): Timing {
  const sleeps = new Set<() => void>();
  const timers = new Set<NodeJS.Timeout>();

  return {
    sleep(ms, reply) {
      if (ms <= 0) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const done = (full: boolean) => {
          clearTimeout(timer);
          sleeps.delete(cut);
          reply?.raw.off('close', cut);
          resolve(full);
        };
        const cut = () => done(false);
        const timer = setTimeout(() => done(true), ms);
        sleeps.add(cut);
        // Before an answer is written, the response closes only when the client has gone.
        reply?.raw.once('close', cut);
      });
    },
    later(ms, fn) {
      const t = setTimeout(() => {
        timers.delete(t);
        fn();
      }, ms);
      timers.add(t);
    },
    cancelTimers() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
    closeAll() {
      for (const cut of [...sleeps]) cut();
      this.cancelTimers();
    },
  };
}

/** Drops the connection without an answer: `reset` sends a TCP reset, otherwise a plain close. */
export function dropConnection(reply: FastifyReply, reset: boolean): void {
  reply.hijack();
  const socket = reply.raw.socket;
  if (reset && socket && !socket.destroyed && typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  reply.raw.destroy();
}
