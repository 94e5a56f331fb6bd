import type { Redis } from 'ioredis';

/**
 * Replica acknowledgement of what a connection wrote (Redis WAIT), for a primary with replicas behind Sentinel.
 * Replication is asynchronous: a write the primary acknowledged can be lost when a replica is promoted before it got
 * it, or when a client still writes to the old primary during a failover. Waiting until `replicas` replicas hold the
 * writes before answering 202 means an accepted OTP survives the switch; a write that no replica confirms within
 * `timeoutMs` is answered 503 (the client retries) instead of being accepted and then lost.
 *
 * WAIT blocks the connection it runs on, so concurrent callers share one: each WAIT covers every write the
 * connection made before it, and callers that arrive while one runs wait for the next.
 */
/** True once the writes made so far on the connection are on enough replicas (always true with 0 replicas). */
export type ReplicaWait = () => Promise<boolean>;

export function createReplicaWait(redis: Redis, replicas: number, timeoutMs = 500): ReplicaWait {
  if (replicas <= 0) return async () => true;
  let running: Promise<boolean> | null = null;
  let next: Promise<boolean> | null = null;
  const once = async (): Promise<boolean> => {
    try {
      return Number(await redis.wait(replicas, timeoutMs)) >= replicas;
    } catch {
      return false;
    }
  };
  return () => {
    if (!running) {
      running = once().finally(() => {
        running = null;
      });
      return running;
    }
    // One is running: it may not cover this caller's writes. Share the one after it.
    next ??= running.then(() => {
      next = null;
      running = once().finally(() => {
        running = null;
      });
      return running;
    });
    return next;
  };
}
