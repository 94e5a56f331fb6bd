import { maskPhone } from '@otp-gateway/core';
import { type CallbackRepo, type DeliveryReport, resendJobId, type SendQueue } from '@otp-gateway/store';
import type { FastifyBaseLogger } from 'fastify';
import type { CallbackResult, WebhookMetrics } from './metrics.js';

/** What recording a report needs: the repository, the send queue for resends, metrics, a clock. */
export interface RecordDeps {
  readonly callbacks: CallbackRepo;
  readonly queue: Pick<SendQueue, 'add'>;
  readonly metrics: WebhookMetrics;
  readonly now: () => number;
}

/**
 * Records one authentic report: one Redis round trip, plus one enqueue when the message that counted was not
 * delivered and the OTP can still go out through another provider. Returns 'error' when Redis fails (the caller
 * answers 503) and never throws.
 */
export async function recordReport(
  deps: RecordDeps,
  report: DeliveryReport,
  log: FastifyBaseLogger,
): Promise<CallbackResult> {
  const { provider } = report;
  const stop = deps.metrics.applySeconds.startTimer({ provider });
  const fields = {
    provider,
    messageId: report.messageId,
    status: report.status,
    providerStatus: report.providerStatus,
  };
  try {
    const res = await deps.callbacks.apply(report, deps.now());
    if (res.kind === 'deferred') {
      log.info(fields, 'delivery report kept until its message id is recorded');
      return 'deferred';
    }
    if (res.kind === 'ignored') {
      log.info({ ...fields, reason: res.reason }, 'delivery report ignored');
      return 'ignored';
    }
    const { otpId, attempt, deliveryStatus, changed, resend, callingCode } = res;
    if (changed && ['delivered', 'undelivered', 'failed'].includes(report.status)) {
      deps.metrics.funnel.inc({ stage: report.status, provider, cc: callingCode });
    }
    log.info(
      { ...fields, errorCode: report.errorCode, otpId, attempt, deliveryStatus, changed },
      changed ? 'delivery report applied' : 'delivery report changed nothing',
    );
    if (resend) {
      try {
        await deps.queue.add('send', resend, { jobId: resendJobId(otpId, attempt) });
      } catch (e) {
        // acc is cleared but no job will send the code: the OTP stays pending without an SMS until it expires
        // (a repeated callback cannot help, it changes nothing). Loud on purpose.
        log.error({ otpId, attempt, provider, err: (e as Error).message }, 'resend could not be queued');
        return 'error';
      }
      deps.metrics.resends.inc({ provider });
      log.info({ otpId, attempt, provider, to: maskPhone(resend.to) }, 'resend queued after non-delivery');
    }
    return changed ? 'applied' : 'unchanged';
  } catch (e) {
    log.error({ ...fields, err: (e as Error).message }, 'delivery report could not be recorded');
    return 'error';
  } finally {
    stop();
  }
}
