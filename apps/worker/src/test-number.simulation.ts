import type { Logger } from '@otp-gateway/core';
import type { BeginOutcome, DeliveryRepo, MessageRef } from '@otp-gateway/store';
import type { WorkerMetrics } from './metrics.js';

type Go = Extract<BeginOutcome, { kind: 'go' }>;
type TestOutcome = NonNullable<Go['otp']['testOutcome']>;

export interface TestNumberDeps {
  readonly delivery: Pick<DeliveryRepo, 'accepted'>;
  readonly metrics: WorkerMetrics;
  /** Applies delivery reports as the callbacks app would (here: the simulated one). */
  readonly applyEarlyReports?: (reports: string[], ref: MessageRef, log: Logger) => Promise<void>;
  readonly now: () => number;
}

/**
 * A test number (TENANTS_FILE): nothing reaches the provider. The attempt is recorded accepted under a `test-`
 * message id, then its simulated report is applied as a real one would be: `delivered`; `undelivered` on the
 * first attempt (the failover's attempt is then delivered); `no_receipt`: none.
 */
export function createTestNumberSimulation(deps: TestNumberDeps) {
  const { delivery, metrics, now } = deps;
  return async (otpId: string, go: Go, outcome: TestOutcome, log: Logger): Promise<void> => {
    const { attempt, provider: providerId, otp } = go;
    const messageId = `test-${otpId}-${attempt}`;
    // no provider will report on it: its simulated report below names the attempt, so the message is not indexed
    await delivery.accepted(otpId, attempt, providerId, {
      messageId,
      providerStatus: 'test',
      hadFailures: false,
      reportsNameAttempt: true,
    });
    metrics.funnel.inc({ stage: 'sent', provider: 'test', cc: otp.callingCode });
    metrics.testSends.inc({ outcome });
    const status =
      outcome === 'no_receipt' ? null : outcome === 'undelivered' && attempt === 1 ? 'undelivered' : 'delivered';
    log.info({ attempt, outcome, simulated: status ?? 'none' }, 'test number: nothing sent to the provider');
    if (status && deps.applyEarlyReports) {
      const report = {
        provider: providerId,
        messageId,
        status,
        providerStatus: `test_${status}`,
        errorCode: status === 'undelivered' ? 'test' : null,
        at: now(),
      };
      await deps.applyEarlyReports([JSON.stringify(report)], { otpId, attempt }, log);
    }
  };
}
