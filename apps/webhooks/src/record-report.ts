import {
  type ApplyResult,
  type DeliveryReport,
  enqueueResend,
  type MessageRef,
  type ReportRepo,
  retryWhileStoreAway,
  type SendQueues,
} from '@otp-gateway/store';
import type { FastifyBaseLogger } from 'fastify';
import type { CallbackResult, WebhookMetrics } from './metrics.js';

/** What recording a report needs: the repository, the send queues for resends, metrics. */
export interface RecordDeps {
  readonly reports: ReportRepo;
  readonly queues: SendQueues;
  readonly metrics: WebhookMetrics;
  /** How long a report waits out a store that refuses it (recordPatience); absent: one try. */
  readonly patience?: RecordPatience;
}

/**
 * Waiting out a store that refuses a report, a failover say (the request connection fails fast, in 700 ms at
 * most). Worth it: a provider may not retry a callback answered 503 (Twilio retries as the callback URL's
 * connection overrides say, and the gateway sets none), so a report given up may be lost, and its receipt check
 * then sends the code again through another provider. The waits end well within the 15 s Twilio gives a
 * callback; at most `maxWaiting` reports wait at once (an outage under a flood of callbacks answers the rest 503
 * at once rather than holding them all).
 */
export interface RecordPatience {
  readonly waitsMs: readonly number[];
  readonly maxWaiting: number;
  /** Reports being tried again now, from their first retry to their answer (the app's own count). */
  waiting: number;
}

export const recordPatience = (
  waitsMs: readonly number[] = [250, 1000, 2000, 4000],
  maxWaiting = 1000,
): RecordPatience => ({
  waitsMs,
  maxWaiting,
  waiting: 0,
});

/** Tries `apply` again while the store is away, within `patience`; counted as waiting from its first retry. */
async function applyPatiently(
  deps: RecordDeps,
  report: DeliveryReport,
  named: MessageRef | undefined,
  log: FastifyBaseLogger,
): Promise<ApplyResult> {
  const patience = deps.patience;
  if (!patience) return deps.reports.apply(report, named);
  let counted = false;
  try {
    return await retryWhileStoreAway(
      () => deps.reports.apply(report, named),
      patience.waitsMs,
      (err, wait) => {
        if (!counted) {
          if (patience.waiting >= patience.maxWaiting) return false;
          patience.waiting++;
          counted = true;
        }
        log.warn(
          { provider: report.provider, err: (err as Error).message, retryInMs: wait },
          'delivery report not recorded yet; trying again',
        );
        return true;
      },
    );
  } finally {
    if (counted) patience.waiting--;
  }
}

/**
 * Records one authentic report: the message lookup and the OTP's update (two round trips in two slots; one when
 * the callback `named` its attempt), plus one enqueue when the message that counted was not delivered and the OTP
 * can still go out through another provider. Returns 'error' when Redis still fails after the waits of `patience`
 * (the caller answers 503) and never throws.
 *
 * A report applied (or that changed nothing) writes no line of its own: its fields go to `note`, for the request's
 * one log line (see request-log.ts). Every other outcome is logged here.
 */
export async function recordReport(
  deps: RecordDeps,
  report: DeliveryReport,
  log: FastifyBaseLogger,
  note: (fields: Record<string, unknown>) => void,
  named?: MessageRef,
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
    const res = await applyPatiently(deps, report, named, log);
    if (res.kind === 'dropped') {
      log.warn(fields, 'delivery report dropped: early reports are at their cap (unknown message ids)');
      return 'dropped';
    }
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
    note({
      ...fields,
      errorCode: report.errorCode,
      otpId,
      attempt,
      deliveryStatus,
      report: changed ? 'applied' : 'unchanged',
    });
    if (resend) {
      try {
        await enqueueResend(deps.queues, resend.otpId, resend.after);
        deps.metrics.resends.inc({ provider });
        log.info({ otpId, attempt, provider }, 'resend queued after non-delivery');
      } catch (e) {
        // The report is recorded and the OTP listed as waiting for its resend: the workers' sweep queues it.
        log.warn({ otpId, attempt, provider, err: (e as Error).message }, 'resend not queued; the sweep will queue it');
      }
    }
    return changed ? 'applied' : 'unchanged';
  } catch (e) {
    log.error({ ...fields, err: (e as Error).message }, 'delivery report could not be recorded');
    return 'error';
  } finally {
    stop();
  }
}
