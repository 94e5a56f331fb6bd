import type { Logger, ProviderId, SmsCost, SmsProvider } from '@otp-gateway/core';
import type { CostCheck, DeliveryRepo, SendJobData, SendJobKind } from '@otp-gateway/store';
import type { Job } from 'bullmq';

export interface CostCheckDeps {
  readonly providers: ReadonlyMap<ProviderId, SmsProvider>;
  readonly delivery: Pick<DeliveryRepo, 'costKnown'>;
  /** Counts a message's cost once it is known for good (the `cost` metric). */
  readonly countCost: (provider: ProviderId, callingCode: string, cost: SmsCost) => void;
  /** Aborted when the worker must stop: the provider call ends. */
  readonly shutdown: AbortSignal;
}

/**
 * A `cost` job: asks the provider what an accepted message cost and puts it on the attempt, in place of the
 * price table's. While the provider does not tell, the job fails and BullMQ tries it again later (its attempts,
 * its exponential backoff); on its last try the table's cost stands and is counted.
 */
export function createCostCheckProcessor(deps: CostCheckDeps) {
  const { providers, delivery, countCost } = deps;
  return async (job: Job<SendJobData, void, SendJobKind>, check: CostCheck, log: Logger): Promise<void> => {
    const provider = providers.get(check.provider);
    const lastTry = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const told = await provider?.cost?.(check.messageId, { signal: deps.shutdown, log }).catch((err: unknown) => {
      if (!lastTry) throw err;
      log.warn({ provider: check.provider, err: { message: String(err) } }, 'cost check failed for good');
      return null;
    });
    if (told) {
      const recorded = await delivery.costKnown(job.data.otpId, check.attempt, told);
      countCost(check.provider, check.callingCode, told);
      log.info({ provider: check.provider, attempt: check.attempt, recorded, ...told }, 'provider told the cost');
      return;
    }
    if (!lastTry) throw new Error(`${check.provider} does not tell the cost yet`);
    if (check.table) countCost(check.provider, check.callingCode, check.table);
    log.info({ provider: check.provider, attempt: check.attempt }, 'provider never told the cost; the table stands');
  };
}
