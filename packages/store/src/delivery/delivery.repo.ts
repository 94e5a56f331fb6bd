import type { ProviderErrorKind, ProviderId, SmsCost } from '@otp-gateway/core';
import { publishQuietly, type StatusEvents } from '../events/status-events.js';
import type { Keyspace } from '../keyspace.js';
import { otpKeys } from '../otp/otp.record.js';
import type { RedisClient } from '../redis/connection.js';
import { ACCEPT, COST, FAIL, GIVE_UP, PLAN, START } from './attempts.scripts.js';
import type { Circuits } from './circuit.js';
import { MIN_RESEND_LIFE_MS } from './life-left.js';
import type { MessageIndex } from './messages.js';

/** What a worker needs to send an OTP: read from its record when the job starts (the job holds only the id). */
export interface OutboundOtp {
  readonly phoneNumber: string;
  readonly locale: string;
  /** The code sealed with AES-GCM, bound to the OTP id. */
  readonly sealedCode: string;
  readonly expiresAt: number;
  readonly callingCode: string;
  /** ISO country ('' on records older than SMS_ROUTES): its price in SMS_PRICES. */
  readonly country: string;
  /** The API key that created it (whose settings apply: templates, sender, webhooks). */
  readonly keyName: string;
  /** A test number's simulated outcome (never sent to a provider), or null. */
  readonly testOutcome: 'delivered' | 'undelivered' | 'no_receipt' | null;
}

export type BeginOutcome =
  | {
      kind: 'go';
      attempt: number;
      provider: ProviderId;
      /** The attempt whose request id to send (differs from `attempt` when it resumes an interrupted one). */
      requestAttempt: number;
      otp: OutboundOtp;
      /** The provider's circuit had failures: a success closes it. */
      hadFailures: boolean;
    }
  /** No provider is free before `ms`. */
  | { kind: 'wait'; ms: number; expiresAt: number }
  /** Another job of this OTP is sending now; its outcome is known within `ms`. */
  | { kind: 'busy'; ms: number }
  | {
      kind: 'stop';
      reason: 'gone' | 'approved' | 'expired' | 'locked' | 'failed' | 'done' | 'too_late' | 'exhausted';
    };

/** SMS_ROUTES: provider order per ISO country of the destination; countries not listed use the default order. */
export type ProviderRoutes = ReadonlyMap<string, readonly ProviderId[]>;

/**
 * Routes as the plan script reads them: `;FR=octopush,twilio;BE=twilio;shop|FR=twilio;shop|*=octopush;` (SMS_ROUTES by
 * country, and an API key's own routes as `<key>|<country or *>`, TENANTS_FILE; names and ids never hold ; = , |).
 * Encoded once per routes map (the worker keeps one map until the settings change).
 */
const encoded = new WeakMap<ProviderRoutes, string>();
export const encodeRoutes = (routes: ProviderRoutes | undefined): string => {
  if (!routes || routes.size === 0) return '';
  let s = encoded.get(routes);
  if (s === undefined) {
    s = `;${[...routes].map(([name, order]) => `${name}=${order.join(',')}`).join(';')};`;
    encoded.set(routes, s);
  }
  return s;
};

/** The worker's view of an OTP's delivery: begin an attempt, settle it, give up. */
export interface DeliveryRepo {
  /**
   * Begins an attempt: the OTP's plan (may it go out, through which providers), the circuits' pick among them,
   * then the attempt recorded `sending` under a lease. Three steps in two slots; a job of the same OTP that
   * moved in between makes the last one answer `busy`. When the first provider in the plan's order is one this
   * worker trusts (circuit.ts), the plan records the attempt itself: one step. `resendAfter`: the calling job is the
   * resend after that attempt (its data's `after`); absent, the first send's. The OTP records which job started
   * its attempt, so that the sweep can queue it again should it die before settling it.
   */
  begin(
    otpId: string,
    order: readonly ProviderId[],
    minLifeMs: number,
    routes?: ProviderRoutes,
    resendAfter?: number,
  ): Promise<BeginOutcome>;
  /**
   * A provider accepted attempt n. Returns the delivery reports that arrived before (JSON), to apply now to this
   * attempt. `costAfterMs` > 0: the provider tells the cost later; the sweep queues the attempt's cost job that
   * long after. The message id is recorded in the message index only when its reports can arrive (receiptsFrom)
   * and will not name the attempt (`reportsNameAttempt`: Twilio's StatusCallback carries it). `retry` runs each
   * of the two steps (the OTP's record, then the message index) so that a step the store refused is tried again
   * without repeating one that succeeded; by default each runs once. The provider's circuit hears of the success
   * at best effort.
   */
  accepted(
    otpId: string,
    attempt: number,
    provider: ProviderId,
    result: {
      messageId: string;
      providerStatus: string;
      hadFailures: boolean;
      cost?: SmsCost | null;
      costAfterMs?: number;
      reportsNameAttempt?: boolean;
    },
    retry?: StepRetry,
  ): Promise<string[]>;
  /**
   * The provider said later what accepted attempt n cost: it replaces the price table's. False when the OTP's
   * record is gone (or the attempt was never accepted).
   */
  costKnown(otpId: string, attempt: number, cost: SmsCost): Promise<boolean>;
  /** Attempt n failed; says whether the provider's circuit opened and whether the OTP ended (permanent). */
  failed(
    otpId: string,
    attempt: number,
    provider: ProviderId,
    kind: ProviderErrorKind,
    errorCode: string,
    pauseMs?: number,
  ): Promise<{ circuit: 'open' | 'closed'; ended: boolean }>;
  /**
   * Ends a pending OTP that never went out as `failed` (`ended`); one that went out once stays usable. With its
   * calling code, for metrics.
   */
  giveUp(otpId: string): Promise<{ ended: boolean; callingCode: string }>;
}

/** Runs one store step, trying it again as it sees fit when the store refuses it. */
export type StepRetry = <T>(step: () => Promise<T>) => Promise<T>;

const once: StepRetry = (step) => step();

export interface DeliverySettings {
  /** How long one provider call may take (its timeout and a margin): another job of the OTP waits that long. */
  readonly leaseMs: number;
  /** When a final receipt is due after a provider accepted; 0 when receipts are not expected (no callbacks). */
  readonly receiptAfterMs: number;
  /**
   * The providers whose receipts can arrive (their callbacks are set up); all of them when absent. Another's
   * accepted message awaits no receipt (its silence would resend every code through the next provider), and its
   * message id is not indexed (no report will look it up).
   */
  readonly receiptsFrom?: ReadonlySet<ProviderId>;
  /** How long the message index is kept: as long as OTP records. */
  readonly messageTtlMs: number;
}

export function createDeliveryRepo(
  deps: {
    redis: RedisClient;
    ks: Keyspace;
    circuits: Circuits;
    messages: MessageIndex;
    now?: () => number;
    /** Publishes the status events these steps list (sent, failed); the sweep covers a failed publish. */
    events?: StatusEvents;
    onEventError?: (err: unknown) => void;
  },
  settings: DeliverySettings,
): DeliveryRepo {
  const { redis, ks, circuits, messages } = deps;
  const now = () => deps.now?.() ?? 0;
  return {
    async begin(otpId, order, minLifeMs, routes, resendAfter = 0) {
      const keys = otpKeys(ks, otpId);
      const plan = await PLAN.run(
        redis,
        keys,
        {
          now: now(),
          id: otpId,
          minLifeMs,
          leaseMs: settings.leaseMs,
          routes: encodeRoutes(routes),
          trusted: circuits.trusted(),
          job: resendAfter,
        },
        { args: order },
      );
      if (plan.outcome === 'go') return go(plan, false);
      if (plan.outcome === 'busy') return { kind: 'busy', ms: Math.max(1, Number(plan.ms)) };
      if (plan.outcome === 'stop') return { kind: 'stop', reason: plan.reason as StopReason };
      const candidates = String(plan.candidates).split(',') as ProviderId[];
      const picked = await circuits.pick(candidates, now() || undefined);
      if (picked.kind === 'wait') return { kind: 'wait', ms: picked.ms, expiresAt: Number(plan.exp) };
      const started = await START.run(redis, keys, {
        now: now(),
        id: otpId,
        attempts: Number(plan.attempts),
        provider: picked.provider,
        leaseMs: settings.leaseMs,
        job: resendAfter,
      });
      if (started.outcome === 'go') return go(started, picked.hadFailures);
      if (started.outcome === 'busy') return { kind: 'busy', ms: Math.max(1, Number(started.ms)) };
      return { kind: 'stop', reason: started.reason as StopReason };
    },

    async accepted(otpId, attempt, provider, result, retry = once) {
      const keys = otpKeys(ks, otpId);
      // can a report of this message come at all (its provider's callbacks are set up)?
      const reportsCome = !settings.receiptsFrom || settings.receiptsFrom.has(provider);
      const acc = await retry(() =>
        ACCEPT.run(redis, keys, {
          now: now(),
          id: otpId,
          attempt,
          provider,
          messageId: result.messageId,
          providerStatus: result.providerStatus,
          receiptAfterMs: reportsCome ? settings.receiptAfterMs : 0,
          minLifeMs: MIN_RESEND_LIFE_MS,
          cost: result.cost ? String(result.cost.amount) : '',
          currency: result.cost?.currency ?? '',
          costAfterMs: result.costAfterMs ?? 0,
        }),
      );
      // Reports that named the attempt came to the OTP's record (report.script.ts), and ACCEPT took them.
      const named = acc.early ? String(acc.early).split('\n') : [];
      // Indexed after the OTP's record: a report can only find the attempt once it counts (so none can land between
      // two tries of the step above). A crash between the two leaves the message unindexed: its reports wait
      // unapplied, and the receipt check resends in time.
      const [indexed] = await Promise.all([
        result.reportsNameAttempt || !reportsCome
          ? []
          : retry(() => messages.record(provider, result.messageId, { otpId, attempt }, settings.messageTtlMs)),
        // a success forgets the provider's failures: when the pick saw some; a trusted send's, at most every 50 ms.
        // Missed (the circuits' master away), the provider keeps its failures a little longer: nothing is lost.
        result.hadFailures ? circuits.success(provider).catch(() => undefined) : circuits.trustedSuccess(provider),
        acc.listed === '1' ? publishQuietly(deps.events, otpId, 'sent', attempt, deps.onEventError) : undefined,
      ]);
      return [...named, ...indexed];
    },

    async costKnown(otpId, attempt, cost) {
      const r = await COST.run(redis, otpKeys(ks, otpId), {
        attempt,
        cost: String(cost.amount),
        currency: cost.currency,
      });
      return r.outcome === 'ok';
    },

    async failed(otpId, attempt, provider, kind, errorCode, pauseMs) {
      const r = await FAIL.run(redis, otpKeys(ks, otpId), { now: now(), id: otpId, attempt, outcome: kind, errorCode });
      const circuit =
        kind === 'retryable' || kind === 'rate_limited'
          ? await circuits.failure(provider, kind, {
              ...(pauseMs === undefined ? {} : { pauseMs }),
              now: now() || undefined,
            })
          : 'closed';
      if (r.listed === '1') await publishQuietly(deps.events, otpId, 'failed', 0, deps.onEventError);
      return { circuit, ended: r.outcome === 'ended' };
    },

    async giveUp(otpId) {
      const r = await GIVE_UP.run(redis, otpKeys(ks, otpId), { now: now(), id: otpId });
      if (r.listed === '1') await publishQuietly(deps.events, otpId, 'failed', 0, deps.onEventError);
      return { ended: r.outcome === 'ended', callingCode: r.cc ?? '' };
    },
  };
}

type StopReason = Extract<BeginOutcome, { kind: 'stop' }>['reason'];

function go(r: Record<string, string | undefined>, hadFailures: boolean): BeginOutcome {
  return {
    kind: 'go',
    attempt: Number(r.attempt),
    provider: r.provider as ProviderId,
    requestAttempt: Number(r.requestAttempt),
    hadFailures,
    otp: {
      phoneNumber: r.phone ?? '',
      locale: r.locale || 'en',
      sealedCode: r.sealed ?? '',
      expiresAt: Number(r.exp),
      callingCode: r.cc ?? '',
      country: r.country ?? '',
      keyName: r.keyName ?? '',
      testOutcome: (r.test || null) as OutboundOtp['testOutcome'],
    },
  };
}
