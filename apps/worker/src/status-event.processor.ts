import type { Logger } from '@otp-gateway/core';
import type { postWebhook, WebhookTarget } from '@otp-gateway/service';
import type { StatusEventJob } from '@otp-gateway/store';
import { type Job, UnrecoverableError } from 'bullmq';
import type { StatusEventMetrics } from './status-event.metrics.js';

export interface StatusEventProcessorDeps {
  /** The endpoint and secrets of an API key's events, looked up at each try (a rotation applies at once). */
  readonly targetFor: (keyName: string) => WebhookTarget | null;
  readonly post: typeof postWebhook;
  readonly settings: { timeoutMs: number; allowPrivateNetworks: boolean; maxAgeMs: number };
  readonly metrics: StatusEventMetrics;
  readonly log: Logger;
  readonly now?: () => number;
}

/** Tries in a row that found an endpoint unreachable (no answer in time, no connection) before its events are held. */
export const ENDPOINT_FAILURES_TO_HOLD = 5;
/** How long an unreachable endpoint's events are held: their tries fail at once, then one try probes it. */
export const ENDPOINT_HOLD_MS = 30_000;

/**
 * Endpoints found unreachable, in this process. Every key's events share one queue and a worker's slots: without
 * this, an endpoint that drops packets held a slot per try for the whole timeout, and the other keys' events
 * waited behind its retries. Held, its events fail at once (BullMQ retries them later, as after a real try). When
 * the hold ends one try probes the endpoint while the others stay held: an answer (any status: an endpoint that
 * answers 5xx answers quickly) releases them, no answer holds them again.
 */
function endpointHealth(now: () => number) {
  const failing = new Map<string, { fails: number; heldUntil: number; probing: boolean }>();
  return {
    /** 0 when a try may go (this one may be the probe), else how long its events are held still. */
    heldFor(url: string): number {
      const f = failing.get(url);
      if (!f || f.fails < ENDPOINT_FAILURES_TO_HOLD) return 0;
      if (f.heldUntil > now()) return f.heldUntil - now();
      if (f.probing) return ENDPOINT_HOLD_MS;
      f.probing = true;
      return 0;
    },
    reached(url: string) {
      failing.delete(url);
    },
    unreachable(url: string) {
      const f = failing.get(url) ?? { fails: 0, heldUntil: 0, probing: false };
      f.fails++;
      f.probing = false;
      if (f.fails >= ENDPOINT_FAILURES_TO_HOLD) f.heldUntil = now() + ENDPOINT_HOLD_MS;
      // bounded: endpoints come from the operator's configuration, a few per key
      if (!failing.has(url) && failing.size >= 10_000) failing.clear();
      failing.set(url, f);
    },
  };
}

/**
 * Delivers one status event. A failed try throws, and BullMQ retries it later (the `webhook` backoff, see
 * webhookBackoff) with the same job, so the same `webhook-id` and body; a 410 Gone, or an event older than the
 * maximum age, fails it for good (visible in the dashboard). An API key without an endpoint (any more) drops it.
 */
export function createStatusEventProcessor(deps: StatusEventProcessorDeps) {
  const { metrics, log } = deps;
  const now = deps.now ?? Date.now;
  const endpoints = endpointHealth(now);
  return async (job: Job<StatusEventJob, void, string>): Promise<void> => {
    const event = job.name;
    const fields = { webhookId: job.data.webhookId, event, attempt: job.attemptsMade + 1 };
    if (job.attemptsMade > 0) metrics.retries.inc({ event });
    const target = deps.targetFor(job.data.keyName);
    if (!target) {
      metrics.deliveries.inc({ event, outcome: 'no_endpoint' });
      log.info(fields, 'status event dropped: no webhook endpoint for its key');
      return;
    }
    if (now() - job.timestamp > deps.settings.maxAgeMs) {
      metrics.deliveries.inc({ event, outcome: 'expired' });
      log.warn(fields, 'status event given up: not delivered within its maximum age');
      throw new UnrecoverableError('not delivered within WEBHOOK_MAX_AGE_SECONDS');
    }
    const heldMs = endpoints.heldFor(target.url);
    if (heldMs > 0) {
      metrics.deliveries.inc({ event, outcome: 'held' });
      throw new Error(`endpoint unreachable on its last ${ENDPOINT_FAILURES_TO_HOLD} tries: held ${heldMs} ms more`);
    }
    const r = await deps.post(target, { id: job.data.webhookId, body: job.data.body }, deps.settings);
    // no answer in time, no connection: a slot held for nothing; anything else answered (or was refused at once)
    if (r.kind === 'failed' && r.status === null) endpoints.unreachable(target.url);
    else endpoints.reached(target.url);
    switch (r.kind) {
      case 'delivered':
        metrics.deliveries.inc({ event, outcome: 'delivered' });
        metrics.latency.observe({ event }, (now() - job.timestamp) / 1000);
        return;
      case 'gone':
        metrics.deliveries.inc({ event, outcome: 'gone' });
        log.warn(fields, 'status event endpoint answered 410 Gone: not retried');
        throw new UnrecoverableError('the endpoint answered 410 Gone');
      case 'refused':
        metrics.deliveries.inc({ event, outcome: 'refused' });
        log.warn({ ...fields, reason: r.reason }, 'status event endpoint refused (private network); retried later');
        throw new Error(`endpoint refused: ${r.reason}`);
      case 'failed':
        metrics.deliveries.inc({ event, outcome: 'failed' });
        log.info({ ...fields, status: r.status, reason: r.reason }, 'status event try failed; retried later');
        throw new Error(`endpoint ${r.reason}`);
    }
  };
}

/** One hour: the longest wait between two tries. */
const MAX_DELAY_MS = 3_600_000;

/**
 * The `webhook` backoff: exponential from `baseMs` (doubling per try, at most an hour), with jitter (a random
 * 50-100 % of it) so that an endpoint coming back is not hit by every pending event at once.
 */
export function webhookBackoff(baseMs: number, random: () => number = Math.random) {
  return (attemptsMade: number): number => {
    const full = Math.min(MAX_DELAY_MS, baseMs * 2 ** Math.max(0, attemptsMade - 1));
    return Math.round(full / 2 + random() * (full / 2));
  };
}
