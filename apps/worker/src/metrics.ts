import { FUNNEL_METRIC } from '@otp-gateway/core';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** The worker's Prometheus metrics. Labels never hold a phone number or a code. */
export interface WorkerMetrics {
  readonly registry: Registry;
  /** OTP funnel stages seen by the worker: sent, failed; by provider and country calling code. */
  readonly funnel: Counter<'stage' | 'provider' | 'cc'>;
  readonly latency: Histogram<'provider' | 'outcome'>;
  readonly attemptFailures: Counter<'provider' | 'kind'>;
  /** Messages reported sent whose final receipt never came in time (not counted as the provider's failure). */
  readonly noFinalReceipt: Counter<'provider'>;
  readonly retries: Counter<'provider'>;
  readonly failovers: Counter<'provider'>;
  readonly circuitOpened: Counter<'provider'>;
  /** What the SMS accepted cost, by provider, calling code and currency (provider's answer, else SMS_PRICES). */
  readonly cost: Counter<'provider' | 'cc' | 'currency'>;
  /** Test numbers' simulated sends (never sent to a provider), by simulated outcome. */
  readonly testSends: Counter<'outcome'>;
}

/**
 * The worker's metrics; with `circuits`, a gauge `otp_circuit_state{provider,state}` read from Redis at each scrape
 * (the state every worker shares): 1 for the provider's current state (closed, open, paused).
 */
export function createWorkerMetrics(
  circuits?: () => Promise<Record<string, { open: boolean; paused: boolean }>>,
): WorkerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  if (circuits) {
    new Gauge({
      name: 'otp_circuit_state',
      help: 'Provider circuit state shared by all workers: 1 for the current state (closed, open, paused after a 429)',
      labelNames: ['provider', 'state'],
      registers,
      async collect() {
        this.reset();
        try {
          for (const [provider, c] of Object.entries(await circuits())) {
            const state = c.open ? 'open' : c.paused ? 'paused' : 'closed';
            for (const s of ['closed', 'open', 'paused']) this.set({ provider, state: s }, s === state ? 1 : 0);
          }
        } catch {
          // Redis away: no sample rather than a stale one
        }
      },
    });
  }
  return {
    registry,
    funnel: new Counter({ ...FUNNEL_METRIC, labelNames: [...FUNNEL_METRIC.labelNames], registers }),
    cost: new Counter({
      name: 'otp_sms_cost_total',
      help: "What accepted SMS cost: the provider's answer when it says, else the SMS_PRICES table",
      labelNames: ['provider', 'cc', 'currency'],
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
    noFinalReceipt: new Counter({
      name: 'otp_final_receipts_missing_total',
      help: 'Messages whose final delivery receipt never came in time, not as a provider failure: reported sent, or accepted under an id no report carries',
      labelNames: ['provider'],
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
    testSends: new Counter({
      name: 'otp_test_sends_total',
      help: 'Sends to test numbers (TENANTS_FILE testNumbers), never sent to a provider, by simulated outcome',
      labelNames: ['outcome'],
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
