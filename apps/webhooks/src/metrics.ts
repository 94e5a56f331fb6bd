import { FUNNEL_METRIC } from '@otp-gateway/core';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/** What became of one callback request (the `result` label). */
export type CallbackResult =
  | 'applied'
  | 'unchanged'
  | 'deferred'
  | 'ignored'
  | 'dropped'
  | 'unknown_status'
  | 'invalid'
  | 'forbidden'
  | 'error';

/** The callbacks process's Prometheus metrics. Labels never hold a phone number, a token or a message id. */
export interface WebhookMetrics {
  readonly registry: Registry;
  readonly received: Counter<'provider' | 'result'>;
  /** OTP funnel stages seen by the callbacks app: delivered, undelivered, failed (delivery). */
  readonly funnel: Counter<'stage' | 'provider' | 'cc'>;
  readonly authFailures: Counter<'provider'>;
  readonly resends: Counter<'provider'>;
  readonly applySeconds: Histogram<'provider'>;
  /** Reports for message ids not recorded yet: kept, kept with the oldest of its message trimmed, or dropped. */
  readonly earlyReports: Counter<'provider' | 'outcome'>;
}

export function createWebhookMetrics(): WebhookMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    funnel: new Counter({ ...FUNNEL_METRIC, labelNames: [...FUNNEL_METRIC.labelNames], registers: [registry] }),
    received: new Counter({
      name: 'otp_callbacks_received_total',
      help: 'Provider delivery callbacks by provider and result (applied, unchanged, deferred, ignored, dropped, unknown_status, invalid, forbidden, error)',
      labelNames: ['provider', 'result'],
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'otp_callback_signature_failures_total',
      help: 'Callbacks refused for a missing or wrong Twilio signature or Octopush token',
      labelNames: ['provider'],
      registers: [registry],
    }),
    resends: new Counter({
      name: 'otp_callback_resends_total',
      help: 'Resends queued because the message that counted was not delivered, by the provider that failed',
      labelNames: ['provider'],
      registers: [registry],
    }),
    earlyReports: new Counter({
      name: 'otp_callback_early_reports_total',
      help: 'Reports whose message was not recorded yet, by outcome: kept for the worker, trimmed (the per-message or per-attempt cap dropped its oldest) or dropped (the total cap)',
      labelNames: ['provider', 'outcome'],
      registers: [registry],
    }),
    applySeconds: new Histogram({
      name: 'otp_callback_apply_seconds',
      help: 'Time to record a delivery report in Redis (and queue its resend, if any)',
      labelNames: ['provider'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
  };
}
