import type { Queue } from 'bullmq';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/** The job states whose depth the dashboard exports, per queue. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;

/** The dashboard's Prometheus metrics, read from Redis at each scrape. Labels hold queue names only. */
export interface DashboardMetrics {
  readonly registry: Registry;
}

interface QueueSnapshot {
  readonly name: string;
  readonly counts: Record<string, number>;
  /** Seconds the oldest waiting job has waited; 0 when none waits. */
  readonly oldestWaitSeconds: number;
}

/**
 * Gauges gathered on scrape: `otp_queue_jobs{queue,state}`, `otp_queue_oldest_waiting_seconds{queue}`
 * and `otp_queue_scrape_ok` (0 when Redis did not answer within `timeoutMs`, 2 s: the queue gauges are then left out rather
 * than shown stale).
 */
export function createDashboardMetrics(
  queues: readonly Queue[],
  opts: { now?: () => number; onError?: (err: unknown) => void; timeoutMs?: number } = {},
): DashboardMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const now = opts.now ?? Date.now;

  // The three gauges are collected concurrently within one scrape: they share one read of Redis.
  let inflight: Promise<QueueSnapshot[] | null> | null = null;
  const snapshot = () => {
    inflight ??= withTimeout(gather(queues, now), opts.timeoutMs ?? 2000).then(
      (s) => s,
      (err: unknown) => {
        opts.onError?.(err);
        return null;
      },
    );
    const p = inflight;
    void p.finally(() => {
      if (inflight === p) inflight = null;
    });
    return p;
  };

  new Gauge({
    name: 'otp_queue_jobs',
    help: `Jobs per queue and state (${QUEUE_STATES.join(', ')}), read from Redis at scrape time`,
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const q of (await snapshot()) ?? []) {
        for (const state of QUEUE_STATES) this.set({ queue: q.name, state }, q.counts[state] ?? 0);
      }
    },
  });
  new Gauge({
    name: 'otp_queue_oldest_waiting_seconds',
    help: 'How long the oldest waiting job of each queue has waited: since it was added (or its delay ended), or for a retry since its last attempt started; 0 when none waits',
    labelNames: ['queue'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const q of (await snapshot()) ?? []) this.set({ queue: q.name }, q.oldestWaitSeconds);
    },
  });
  new Gauge({
    name: 'otp_queue_scrape_ok',
    help: '1 when the queue gauges of this scrape could be read from Redis, else 0',
    registers: [registry],
    async collect() {
      this.set((await snapshot()) ? 1 : 0);
    },
  });
  return { registry };
}

/** A queue waits for its connection indefinitely; a scrape must not. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function gather(queues: readonly Queue[], now: () => number): Promise<QueueSnapshot[]> {
  return Promise.all(
    queues.map(async (queue) => {
      const [counts, oldest] = await Promise.all([
        queue.getJobCounts(...QUEUE_STATES),
        // Ascending: the job that has waited longest comes first.
        queue.getJobs(['waiting'], 0, 0, true),
      ]);
      const job = oldest[0];
      // A delayed job waits from the end of its delay; a retried one from the start of its last attempt.
      const since = job ? Math.max(job.timestamp + (job.opts.delay ?? 0), job.processedOn ?? 0) : null;
      return {
        name: queue.name,
        counts,
        oldestWaitSeconds: since === null ? 0 : Math.max(0, (now() - since) / 1000),
      };
    }),
  );
}
