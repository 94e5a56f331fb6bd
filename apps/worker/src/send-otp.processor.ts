import {
  decryptCode,
  isProviderError,
  type Logger,
  maskPhone,
  type OtpKeys,
  ProviderError,
  type ProviderId,
  type SendJobData,
  type SmsProvider,
} from '@otp-gateway/core';
import { renderOtpMessage } from '@otp-gateway/providers';
import type { DeliveryRepo } from '@otp-gateway/store';
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import { otpBackoff } from './backoff.js';
import type { WorkerMetrics } from './metrics.js';

export interface SendProcessorDeps {
  readonly providers: ReadonlyMap<ProviderId, SmsProvider>;
  readonly order: readonly ProviderId[];
  readonly delivery: DeliveryRepo;
  readonly keys: OtpKeys;
  readonly log: Logger & { child(b: object): Logger };
  readonly metrics: WorkerMetrics;
  /** Aborted when the worker must stop: in-flight provider calls end. */
  readonly shutdown: AbortSignal;
  /** An SMS is not sent when the OTP has less life than this left. */
  readonly minLifeMs: number;
  /**
   * After an accepted attempt, schedules the check that resends through the next provider when no final
   * receipt came in time; null when receipts are not expected (no callbacks configured).
   */
  readonly scheduleReceiptCheck: ((data: SendJobData, attempt: number, provider: ProviderId) => Promise<void>) | null;
  /** Applies delivery reports that arrived before the message id was recorded. */
  readonly applyEarlyReports?: (reports: string[], log: Logger) => Promise<void>;
  readonly now?: () => number;
}

/**
 * Takes a send job: picks the provider (first in order whose circuit is closed), records the attempt,
 * sends, and records the outcome. Throws to make BullMQ retry (ProviderError), to park the job until a
 * provider is free (DelayedError), or to fail it for good (UnrecoverableError, the OTP then reads `failed`).
 */
export function createSendProcessor(deps: SendProcessorDeps) {
  const { providers, order, delivery, keys, metrics } = deps;
  const now = deps.now ?? Date.now;

  const giveUp = async (job: Job<SendJobData>, log: Logger, why: string): Promise<void> => {
    if (await delivery.giveUp(job.data.otpId, now())) {
      metrics.funnel.inc({ stage: 'failed', provider: 'none', cc: job.data.callingCode });
      log.error({ reason: why }, 'otp failed: no provider could send it');
      throw new UnrecoverableError(`no provider could send the code: ${why}`);
    }
    // A message went out before (its receipt was negative or never came): the OTP stays usable.
    log.info({ reason: why }, 'no other provider can resend the code; the earlier message stands');
  };

  return async (job: Job<SendJobData>, token?: string): Promise<void> => {
    const d = job.data;
    const log = deps.log.child({ otpId: d.otpId, jobId: job.id });
    if (d.checkReceiptOf) {
      const { attempt, provider } = d.checkReceiptOf;
      // When the receipt came (or the OTP ended) this is a no-op: begin() below answers `done` while an
      // attempt still counts. It still runs, as the safety net for a resend the callbacks app failed to queue.
      if (await delivery.receiptTimedOut(d.otpId, attempt, provider, now())) {
        metrics.attemptFailures.inc({ provider, kind: 'no_receipt' });
        log.warn({ provider, attempt }, 'no delivery receipt in time; sending through the next provider');
      }
    }
    const begun = await delivery.begin(d.otpId, order, now(), deps.minLifeMs);

    if (begun.kind === 'stop') {
      if (begun.reason === 'too_late' || begun.reason === 'exhausted') return giveUp(job, log, begun.reason);
      log.debug({ reason: begun.reason }, 'nothing to send');
      return;
    }
    if (begun.kind === 'busy') {
      log.debug({ waitMs: begun.ms }, 'another job of this OTP is sending; job parked');
      await job.moveToDelayed(now() + begun.ms, token);
      throw new DelayedError();
    }
    if (begun.kind === 'wait') {
      const at = now() + begun.ms;
      if (at + deps.minLifeMs >= d.expiresAt) return giveUp(job, log, 'every provider unavailable until expiry');
      log.info({ waitMs: begun.ms }, 'no provider free now; job parked');
      await job.moveToDelayed(at, token);
      throw new DelayedError();
    }

    const { attempt, provider: providerId, requestAttempt } = begun;
    const provider = providers.get(providerId);
    if (!provider) return giveUp(job, log, `provider ${providerId} is not configured on this worker`);
    if (attempt > 1) metrics.retries.inc({ provider: providerId });
    if (requestAttempt !== attempt)
      log.warn({ provider: providerId, attempt, resumes: requestAttempt }, 'resuming an interrupted attempt');

    let body: string;
    try {
      const code = decryptCode(keys, d.otpId, d.sealedCode);
      body = renderOtpMessage({
        code,
        ttlSeconds: Math.max(60, Math.round((d.expiresAt - now()) / 1000)),
        locale: d.locale,
      });
    } catch {
      await delivery.failed(d.otpId, attempt, providerId, 'permanent', 'sealed_code_unreadable', now());
      log.error({ attempt }, 'job data cannot be decrypted (OTP_SECRET changed or data tampered)');
      throw new UnrecoverableError('sealed code unreadable');
    }

    const stopTimer = metrics.latency.startTimer({ provider: providerId });
    try {
      const res = await provider.send(
        { otpId: d.otpId, attemptId: `${d.otpId}-${requestAttempt}`, to: d.to, body, expiresAt: d.expiresAt },
        { signal: deps.shutdown, log },
      );
      stopTimer({ outcome: 'accepted' });
      const early = await delivery.accepted(
        d.otpId,
        attempt,
        providerId,
        res.messageId,
        res.providerStatus ?? '',
        now(),
      );
      if (early.length > 0 && deps.applyEarlyReports) await deps.applyEarlyReports(early, log);
      if (deps.scheduleReceiptCheck) {
        const { checkReceiptOf: _prev, ...data } = d;
        await deps.scheduleReceiptCheck(data, attempt, providerId);
      }
      metrics.funnel.inc({ stage: 'sent', provider: providerId, cc: d.callingCode });
      if (attempt > 1) metrics.failovers.inc({ provider: providerId });
      log.info(
        { provider: providerId, attempt, to: maskPhone(d.to), messageId: res.messageId },
        'sms accepted by provider',
      );
    } catch (e) {
      if (deps.shutdown.aborted) {
        // Cut off by our own shutdown: whether it went out is unknown. The attempt stays `sending`; once its
        // lease ends, the job (taken over by another worker) resumes it with the same request id.
        stopTimer({ outcome: 'aborted' });
        log.warn({ provider: providerId, attempt }, 'send cut off by shutdown; it will be resumed');
        throw e;
      }
      const err = isProviderError(e)
        ? e
        : new ProviderError(e instanceof Error ? e.message : 'unknown failure', 'retryable', 'internal');
      stopTimer({ outcome: err.kind });
      const circuit = await delivery.failed(d.otpId, attempt, providerId, err.kind, err.code, now(), err.retryAfterMs);
      metrics.attemptFailures.inc({ provider: providerId, kind: err.kind });
      if (circuit === 'open') metrics.circuitOpened.inc({ provider: providerId });
      log.warn(
        { provider: providerId, attempt, kind: err.kind, errorCode: err.code, circuit, to: maskPhone(d.to) },
        'sms attempt failed',
      );
      if (err.kind === 'permanent') {
        metrics.funnel.inc({ stage: 'failed', provider: providerId, cc: d.callingCode });
        throw new UnrecoverableError(`${providerId} refused the number (${err.code})`);
      }
      if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) return giveUp(job, log, 'retries exhausted');
      const retryDelayMs = otpBackoff(job.attemptsMade + 1, 'otp', err);
      if (now() + retryDelayMs + deps.minLifeMs >= d.expiresAt) return giveUp(job, log, 'no time left to retry');
      throw Object.assign(err, { retryDelayMs });
    }
  };
}
