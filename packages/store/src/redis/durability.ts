import type { Redis } from 'ioredis';

/**
 * Replica acknowledgement of an accepted OTP (Redis WAIT), for a primary with replicas behind Sentinel.
 * Replication is asynchronous: a write the primary acknowledged can be lost when a replica is promoted before it got
 * it, or when a client still writes to the old primary during a failover. Before answering 202 the API checks that
 * the OTP's record is on the primary it talks to and that `replicas` replicas hold everything that primary took
 * until now; otherwise it answers 503 (the client retries) instead of accepting an OTP a failover could lose.
 *
 * How, and why so: WAIT covers only the writes of the connection it runs on, blocks that connection while it waits,
 * and answers at once on a connection that wrote nothing (a fresh one after a reconnect). So the check runs on a
 * connection of its own, as one pipeline: `EXISTS` of each record (it is on this node), a write of a marker (so
 * the WAIT covers everything the node took before it, the records included), then `WAIT`. A reconnect in the
 * middle fails the pipeline (the connection's offline queue is off) rather than answering for another node.
 * Callers that arrive while one check runs share the next one.
 */
export type ReplicaWait = (recordKey: string) => Promise<boolean>;

export function createReplicaWait(
  redis: Redis,
  opts: { replicas: number; markerKey: string; timeoutMs?: number },
): ReplicaWait {
  const { replicas, markerKey } = opts;
  if (replicas <= 0) return async () => true;
  const timeoutMs = opts.timeoutMs ?? 500;
  let waiting: { key: string; done: (ok: boolean) => void }[] = [];
  let running = false;

  const runBatch = async () => {
    running = true;
    while (waiting.length > 0) {
      const batch = waiting;
      waiting = [];
      let results: boolean[];
      try {
        const pipeline = redis.pipeline();
        for (const w of batch) pipeline.exists(w.key);
        pipeline.incr(markerKey);
        pipeline.wait(replicas, timeoutMs);
        const answers = (await pipeline.exec()) ?? [];
        const acked = Number(answers.at(-1)?.[1] ?? 0) >= replicas && !answers.some(([err]) => err);
        results = batch.map((_, i) => acked && Number(answers[i]?.[1]) === 1);
      } catch {
        results = batch.map(() => false);
      }
      for (const [i, w] of batch.entries()) w.done(results[i] ?? false);
    }
    running = false;
  };

  return (key) =>
    new Promise<boolean>((resolve) => {
      waiting.push({ key, done: resolve });
      if (!running) void runBatch();
    });
}
