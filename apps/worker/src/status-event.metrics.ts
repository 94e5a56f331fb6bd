import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Status webhook metrics (labels: the event type and an outcome; never a number, an id or a URL). */
export interface StatusEventMetrics {
  /** Tries by event and outcome: delivered, failed, refused, gone, expired, no_endpoint, held (not tried: endpoint unreachable). */
  readonly deliveries: Counter<'event' | 'outcome'>;
  readonly retries: Counter<'event'>;
  /** From the event's publication to its delivery. */
  readonly latency: Histogram<'event'>;
}

/** Registers the metrics; `oldestPendingMs` is read at each scrape (the queue's oldest waiting or delayed event). */
export function createStatusEventMetrics(
  registry: Registry,
  oldestPendingMs: () => Promise<number | null>,
): StatusEventMetrics {
  const registers = [registry];
  new Gauge({
    name: 'otp_webhook_oldest_pending_seconds',
    help: 'Age of the oldest status event not delivered yet (waiting or waiting for a retry); 0 when none',
    registers,
    async collect() {
      try {
        const ms = await oldestPendingMs();
        this.set(ms === null ? 0 : ms / 1000);
      } catch {
        // Redis away: keep the last sample
      }
    },
  });
  return {
    deliveries: new Counter({
      name: 'otp_webhook_deliveries_total',
      help: 'Status webhook tries by event type and outcome (delivered, failed, refused, gone, expired, no_endpoint, held)',
      labelNames: ['event', 'outcome'],
      registers,
    }),
    retries: new Counter({
      name: 'otp_webhook_retries_total',
      help: 'Status webhook tries after the first, by event type',
      labelNames: ['event'],
      registers,
    }),
    latency: new Histogram({
      name: 'otp_webhook_latency_seconds',
      help: 'From a status event being queued to its delivery, by event type',
      labelNames: ['event'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400],
      registers,
    }),
  };
}
