import { FUNNEL_METRIC } from '@otp-gateway/core';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/** The API's Prometheus metrics. Labels never hold a phone number or a code. */
export interface ApiMetrics {
  readonly registry: Registry;
  /** OTP funnel stages seen by the API: requested, approved, expired, locked, wrong_code. */
  readonly funnel: Counter<'stage' | 'provider' | 'cc'>;
  readonly verifications: Counter<'outcome'>;
  readonly refusals: Counter<'code'>;
}

/** What the blocks gauge reads on each scrape: the active blocks' guard and calling code. */
export type BlocksSource = () => Promise<readonly { guard: string; callingCode: string }[]>;

export function createApiMetrics(blocks?: BlocksSource): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  if (blocks) {
    new Gauge({
      name: 'otp_guard_blocks_active',
      help: 'Active abuse-guard blocks (velocity blocks, low-conversion throttles, spent budgets) by guard and calling code',
      labelNames: ['guard', 'cc'],
      registers: [registry],
      async collect() {
        this.reset();
        // a scrape must not fail for the store: the gauge is then left empty
        for (const b of await blocks().catch(() => [])) this.inc({ guard: b.guard, cc: b.callingCode || 'none' });
      },
    });
  }
  return {
    registry,
    funnel: new Counter({ ...FUNNEL_METRIC, labelNames: [...FUNNEL_METRIC.labelNames], registers: [registry] }),
    verifications: new Counter({
      name: 'otp_verifications_total',
      help: 'Verification answers by outcome (approved, wrong_code, otp_expired, otp_locked, ...)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    refusals: new Counter({
      name: 'otp_api_refusals_total',
      help: 'Refused API requests by error code (rate limits, auth, validation)',
      labelNames: ['code'],
      registers: [registry],
    }),
  };
}
