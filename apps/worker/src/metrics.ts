import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/** The worker's Prometheus metrics. Labels never hold a phone number or a code. */
export interface WorkerMetrics {
  readonly registry: Registry;
  /** OTP funnel stages seen by the worker: sent, failed; by provider and country calling code. */
  readonly funnel: Counter<'stage' | 'provider' | 'cc'>;
  readonly latency: Histogram<'provider' | 'outcome'>;
  readonly attemptFailures: Counter<'provider' | 'kind'>;
  readonly retries: Counter<'provider'>;
  readonly failovers: Counter<'provider'>;
  readonly circuitOpened: Counter<'provider'>;
}

export function createWorkerMetrics(): WorkerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    funnel: new Counter({
      name: 'otp_funnel_total',
      help: 'OTP funnel events',
      labelNames: ['stage', 'provider', 'cc'],
      registers,
    }),
    latency: new Histogram({
      name: 'otp_provider_request_seconds',
      help: 'Provider send call latency',
      labelNames: ['provider', 'outcome'],
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
      registers,
    }),
    attemptFailures: new Counter({
      name: 'otp_provider_failures_total',
      help: 'Failed provider attempts by kind',
      labelNames: ['provider', 'kind'],
      registers,
    }),
    retries: new Counter({
      name: 'otp_send_retries_total',
      help: 'Attempts after the first',
      labelNames: ['provider'],
      registers,
    }),
    failovers: new Counter({
      name: 'otp_failovers_total',
      help: 'Codes that went out on a later attempt',
      labelNames: ['provider'],
      registers,
    }),
    circuitOpened: new Counter({
      name: 'otp_circuit_opened_total',
      help: 'Times a provider circuit opened',
      labelNames: ['provider'],
      registers,
    }),
  };
}
