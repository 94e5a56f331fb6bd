import { FUNNEL_METRIC } from '@otp-gateway/core';
import { Counter, collectDefaultMetrics, Registry } from 'prom-client';

/** The API's Prometheus metrics. Labels never hold a phone number or a code. */
export interface ApiMetrics {
  readonly registry: Registry;
  /** OTP funnel stages seen by the API: requested, approved, expired, locked, wrong_code. */
  readonly funnel: Counter<'stage' | 'provider' | 'cc'>;
  readonly verifications: Counter<'outcome'>;
  readonly refusals: Counter<'code'>;
}

export function createApiMetrics(): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
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
