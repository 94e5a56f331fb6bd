import {
  decryptCode,
  isProviderError,
  type Logger,
  maskPhone,
  type OtpKeys,
  ProviderError,
  type ProviderId,
  type SendResult,
  type SmsCost,
  type SmsProvider,
} from '@otp-gateway/core';
import { type OtpTemplates, renderOtpMessage } from '@otp-gateway/providers';
import {
  type BeginOutcome,
  type DeliveryRepo,
  type MessageRef,
  MIN_RESEND_LIFE_MS,
  MIN_SEND_LIFE_MS,
  retryWhileStoreAway,
  type SendJobData,
  type SendJobKind,
  worthSending,
} from '@otp-gateway/store';
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import { otpBackoff } from './backoff.js';
import { createCostCheckProcessor } from './cost-check.processor.js';
import type { WorkerMetrics } from './metrics.js';
import { createTestNumberSimulation } from './test-number.simulation.js';

export interface SendProcessorDeps {
  readonly providers: ReadonlyMap<ProviderId, SmsProvider>;
  /** The order for countries without a route of their own. */
  readonly order: readonly ProviderId[];
  /** The routes in force: SMS_ROUTES by ISO country, and API keys' own (see send.worker.ts and encodeRoutes). */
  readonly routes?: () => ReadonlyMap<string, readonly ProviderId[]>;
  /** SMS_PRICES: a message's cost when the provider's answer does not say it. */
  readonly priceOf?: (provider: ProviderId, country: string) => SmsCost | null;
  /**
   * COST_CHECK_DELAY_SECONDS in ms: when a provider tells the cost after the send, how long after it the sweep
   * queues the attempt's cost job (costCheck below); 0 or absent: never asked, the price table's cost stands.
   */
  readonly costCheckAfterMs?: number;
  readonly delivery: DeliveryRepo;
  readonly keys: OtpKeys;
  readonly log: Logger & { child(b: object): Logger };
  readonly metrics: WorkerMetrics;
  /** Aborted when the worker must stop: in-flight provider calls end. */
  readonly shutdown: AbortSignal;
  /** Applies to attempt `ref` the delivery reports that arrived before its message was recorded. */
  readonly applyEarlyReports?: (reports: string[], ref: MessageRef, log: Logger) => Promise<void>;
  /** The templates of an API key's messages; by default the built-in ones (renderOtpMessage). */
  readonly templatesFor?: (keyName: string) => OtpTemplates;
  /** An API key's own SMS sender (TENANTS_FILE), or null for the provider's configured one. */
  readonly senderFor?: (keyName: string) => string | null;
  readonly now?: () => number;
}

type SendJob = Job<SendJobData, void, SendJobKind>;
type Go = Extract<BeginOutcome, { kind: 'go' }>;

/**
 * The life an OTP must have left for this job to send it: a resend job (`after`: a message went out before) needs
 * more than a first send (life-left.ts).
 */
const minLifeOf = (job: SendJob): number => (job.data.after ? MIN_RESEND_LIFE_MS : MIN_SEND_LIFE_MS);

/** Provider attempts per OTP, whatever their outcome, before it is given up. */
const MAX_ATTEMPTS = 40;

/**
 * Takes a send job (a first send or a resend: the same work, the OTP's record says what is left to do): plans the
 * attempt (the first provider in order whose circuit lets it through), sends, and records the outcome. Throws to
 * make BullMQ retry (ProviderError), to park the job until a provider is free (DelayedError), or to fail it for
 * good (UnrecoverableError, the OTP then reads `failed`). A `cost` job goes to the cost check
 * (cost-check.processor.ts).
 */
export function createSendProcessor(deps: SendProcessorDeps) {
  const { providers, order, delivery, keys, metrics } = deps;
  const now = deps.now ?? Date.now;
  const countCost = (provider: ProviderId, callingCode: string, cost: SmsCost) =>
    metrics.cost.inc({ provider, cc: callingCode, currency: cost.currency }, cost.amount);
  const costCheck = createCostCheckProcessor({ providers, delivery, countCost, shutdown: deps.shutdown });
  const simulateTestNumber = createTestNumberSimulation({ ...deps, now });

  const giveUp = async (otpId: string, log: Logger, why: string): Promise<void> => {
    const r = await delivery.giveUp(otpId);
    if (r.ended) {
      metrics.funnel.inc({ stage: 'failed', provider: 'none', cc: r.callingCode });
      log.error({ reason: why }, 'otp failed: no provider could send it');
      throw new UnrecoverableError(`no provider could send the code: ${why}`);
    }
    // A message went out before (its receipt was negative or never came): the OTP stays usable.
    log.info({ reason: why }, 'no other provider can resend the code; the earlier message stands');
  };

  /** Parks the job until `at` (BullMQ's delayed set); the DelayedError tells BullMQ it moved. */
  const park = async (job: SendJob, token: string | undefined, at: number): Promise<never> => {
    await job.moveToDelayed(at, token);
    throw new DelayedError();
  };

  /** No attempt starts now: the OTP is done or past sending, or the job waits for another job's outcome or a provider. */
  const notStarted = async (
    job: SendJob,
    token: string | undefined,
    begun: Exclude<BeginOutcome, Go>,
    log: Logger,
  ): Promise<void> => {
    if (begun.kind === 'stop') {
      if (begun.reason === 'too_late' || begun.reason === 'exhausted') return giveUp(job.data.otpId, log, begun.reason);
      log.debug({ reason: begun.reason }, 'nothing to send');
      return;
    }
    if (begun.kind === 'busy') {
      log.debug({ waitMs: begun.ms }, 'another job of this OTP is sending; job parked');
      return park(job, token, now() + begun.ms);
    }
    // the jobs parked on one paused or open provider do not all wake at the same instant (a herd on a provider
    // that just asked us to slow down)
    const at = now() + begun.ms + Math.floor(Math.random() * Math.min(1000, begun.ms / 4));
    if (!worthSending(at, begun.expiresAt, minLifeOf(job)))
      return giveUp(job.data.otpId, log, 'every provider unavailable until expiry');
    log.info({ waitMs: begun.ms }, 'no provider free now; job parked');
    return park(job, token, at);
  };

  /** The SMS text: the code unsealed into the API key's template. A code that cannot be unsealed fails the OTP. */
  const messageBody = async (otpId: string, go: Go, log: Logger): Promise<string> => {
    const { otp } = go;
    try {
      const code = decryptCode(keys, otpId, otp.sealedCode);
      const input = {
        code,
        ttlSeconds: Math.max(60, Math.round((otp.expiresAt - now()) / 1000)),
        locale: otp.locale,
      };
      return deps.templatesFor ? deps.templatesFor(otp.keyName).render(input) : renderOtpMessage(input);
    } catch {
      await delivery.failed(otpId, go.attempt, go.provider, 'permanent', 'sealed_code_unreadable');
      log.error({ attempt: go.attempt }, 'sealed code cannot be decrypted (OTP_SECRET changed or data tampered)');
      throw new UnrecoverableError('sealed code unreadable');
    }
  };

  /**
   * The provider refused the message or could not be reached: recorded (and told to its circuit). A permanent
   * refusal fails the job for good; otherwise the job waits parked for its next attempt, or the OTP is given up.
   */
  const sendFailed = async (job: SendJob, token: string | undefined, go: Go, err: ProviderError, log: Logger) => {
    const { otpId } = job.data;
    const { attempt, provider: providerId, otp } = go;
    // counted and logged before the store is told: a store away now must not hide the provider's failure
    metrics.attemptFailures.inc({ provider: providerId, kind: err.kind });
    log.warn(
      { provider: providerId, attempt, kind: err.kind, errorCode: err.code, to: maskPhone(otp.phoneNumber) },
      'sms attempt failed',
    );
    const { circuit, ended } = await delivery.failed(otpId, attempt, providerId, err.kind, err.code, err.retryAfterMs);
    if (circuit === 'open') {
      metrics.circuitOpened.inc({ provider: providerId });
      log.warn({ provider: providerId }, 'provider circuit opened');
    }
    if (err.kind === 'permanent') {
      if (ended) metrics.funnel.inc({ stage: 'failed', provider: providerId, cc: otp.callingCode });
      throw new UnrecoverableError(`${providerId} refused the number (${err.code})`);
    }
    if (attempt >= MAX_ATTEMPTS) return giveUp(otpId, log, 'retries exhausted');
    // The job waits for its next attempt parked (BullMQ's own retries are for unexpected errors only): the
    // OTP's attempts count the tries, and the wait ends before expiry or not at all.
    const at = now() + otpBackoff(attempt, err);
    if (!worthSending(at, otp.expiresAt, minLifeOf(job))) return giveUp(otpId, log, 'no time left to retry');
    return park(job, token, at);
  };

  /**
   * The provider took the message: the attempt counts (each recording step tried again while the store is away),
   * its cost and the funnel are counted, and the reports that came before the message was recorded are applied.
   */
  const recordAcceptance = async (otpId: string, go: Go, provider: SmsProvider, res: SendResult, log: Logger) => {
    const { attempt, provider: providerId, otp } = go;
    const cost = res.cost ?? deps.priceOf?.(providerId, otp.country) ?? null;
    // A provider that tells the cost later is asked later (the table's cost stands on the attempt meanwhile);
    // the metric counts each attempt's cost once, when it is known for good (see cost-check.processor.ts).
    const askLater = !res.cost && provider.cost && deps.costCheckAfterMs ? deps.costCheckAfterMs : 0;
    const early = await delivery.accepted(
      otpId,
      attempt,
      providerId,
      {
        messageId: res.messageId,
        providerStatus: res.providerStatus ?? '',
        hadFailures: go.hadFailures,
        cost,
        costAfterMs: askLater,
        reportsNameAttempt: res.reportsNameAttempt === true,
      },
      (step) =>
        retryWhileStoreAway(step, RECORD_RETRY_MS, (err, wait) => {
          log.warn({ err: { message: String(err) }, retryInMs: wait }, 'acceptance not recorded; trying again');
          return true;
        }),
    );
    if (cost && !askLater) countCost(providerId, otp.callingCode, cost);
    metrics.funnel.inc({ stage: 'sent', provider: providerId, cc: otp.callingCode });
    if (attempt > 1) metrics.failovers.inc({ provider: providerId });
    log.info(
      { provider: providerId, attempt, to: maskPhone(otp.phoneNumber), messageId: res.messageId },
      'sms accepted by provider',
    );
    if (early.length > 0 && deps.applyEarlyReports) {
      // reports that came before the message was recorded; one not applied now is not applied later
      await deps
        .applyEarlyReports(early, { otpId, attempt }, log)
        .catch((err: unknown) =>
          log.error({ err: { message: String(err) }, reports: early.length }, 'early delivery reports not applied'),
        );
    }
  };

  return async (job: SendJob, token?: string): Promise<void> => {
    const { otpId } = job.data;
    const log = deps.log.child({ otpId, jobId: job.id });
    if (job.name === 'cost') {
      if (job.data.cost) return costCheck(job, job.data.cost, log);
      throw new UnrecoverableError('cost job without its check');
    }
    const begun = await delivery.begin(otpId, order, minLifeOf(job), deps.routes?.(), job.data.after);
    if (begun.kind !== 'go') return notStarted(job, token, begun, log);

    const { attempt, provider: providerId, requestAttempt, otp } = begun;
    if (otp.testOutcome) return simulateTestNumber(otpId, begun, otp.testOutcome, log);
    const provider = providers.get(providerId);
    if (!provider) return giveUp(otpId, log, `provider ${providerId} is not configured on this worker`);
    if (attempt > 1) metrics.retries.inc({ provider: providerId });
    if (requestAttempt !== attempt)
      log.warn({ provider: providerId, attempt, resumes: requestAttempt }, 'resuming an interrupted attempt');
    const body = await messageBody(otpId, begun, log);

    const stopTimer = metrics.latency.startTimer({ provider: providerId });
    let res: SendResult;
    try {
      res = await provider.send(
        {
          otpId,
          attemptId: `${otpId}-${requestAttempt}`,
          attempt,
          to: otp.phoneNumber,
          body,
          expiresAt: otp.expiresAt,
          sender: deps.senderFor?.(otp.keyName) ?? null,
        },
        { signal: deps.shutdown, log },
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
      return sendFailed(job, token, begun, err, log);
    }
    // The provider took the message. From here on a failure is the store's, never the provider's: recorded as a
    // failed attempt, it would send the code again through the next provider.
    stopTimer({ outcome: 'accepted' });
    return recordAcceptance(otpId, begun, provider, res, log);
  };
}

/**
 * The waits between tries of a step that records a provider's acceptance, while the store is away (a failover:
 * READONLY, CLUSTERDOWN; on a lost connection commands are not refused, they wait for the reconnection). Given up,
 * the error ends this run of the job: its attempt stays `sending`, and once its lease is over the job (BullMQ's
 * retry, or the sweep's) resumes it with the same request id: Octopush deduplicates it, Twilio sends the code a
 * second time, as after a worker killed during its call.
 */
const RECORD_RETRY_MS = [250, 1000, 2000] as const;
