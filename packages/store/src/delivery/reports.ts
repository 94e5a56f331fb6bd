import { DELIVERY_STATUSES, type DeliveryStatus, isProviderId, type ProviderId } from '@otp-gateway/core';
import { publishQuietly, type StatusEvents } from '../events/status-events.js';
import type { Keyspace } from '../keyspace.js';
import { ATTEMPT_EARLY_REPORTS_CAP, otpKeys, SWEEP_GRACE_MS } from '../otp/otp.record.js';
import type { RedisClient } from '../redis/connection.js';
import type { Circuits } from './circuit.js';
import { MIN_RESEND_LIFE_MS } from './life-left.js';
import type { EarlyOutcome, MessageIndex, MessageRef } from './messages.js';
import { APPLY_REPORT } from './report.script.js';

/** One delivery report from a provider, mapped onto the gateway's DeliveryStatus. */
export interface DeliveryReport {
  readonly provider: ProviderId;
  readonly messageId: string;
  readonly status: DeliveryStatus;
  /** The provider's own status (Twilio `undelivered`, Octopush `NOT_DELIVERED`), kept on the attempt. */
  readonly providerStatus: string;
  readonly errorCode: string | null;
  /** When the provider says it happened, epoch ms. */
  readonly at: number;
  /** The recipient the provider reports (Octopush's `number`), if any: it must be the OTP's number. */
  readonly phoneNumber?: string | null;
}

/**
 * What applying a report did:
 * - `applied`: the report belongs to attempt `attempt` of `otpId`; `changed` is false for a duplicate or a late
 *   report (statuses only move forward). `deliveryStatus` is the OTP's after the report. `resend` is set when the
 *   attempt that counted was not delivered and the OTP can still go out through another provider: the caller
 *   queues it (enqueueResend; the due set has it listed until a worker starts it, so the sweep covers a lost add).
 * - `ignored`: the OTP is gone (`unknown_otp`) or the message no longer matches its attempt (`stale`).
 * - `deferred`: the message id is not recorded yet (the report beat the worker); it is kept (by the message index,
 *   or on the attempt when the report named it) and handed to the worker when it records the message. A report
 *   for a message the gateway never sent just expires.
 */
export type ApplyResult =
  | {
      kind: 'applied';
      otpId: string;
      attempt: number;
      deliveryStatus: DeliveryStatus;
      changed: boolean;
      /** Country calling code of the OTP's number, for metrics. */
      callingCode: string;
      resend: { otpId: string; after: number } | null;
    }
  | { kind: 'ignored'; reason: 'unknown_otp' | 'stale' | 'number_mismatch' }
  | { kind: 'deferred' }
  /** The message id is not recorded yet and the early reports kept are at their cap: the report is dropped. */
  | { kind: 'dropped' };

/** Records provider delivery reports on OTPs: the message lookup, then the OTP (and the circuit on a failure). */
export interface ReportRepo {
  /**
   * `named`: the OTP attempt the report belongs to, when something trustworthy names it (a signed callback URL
   * that carries it, or the worker applying the reports its acceptance handed over): then the message index is not
   * looked up, and a report for an attempt still being sent is kept on the OTP's record for the acceptance.
   */
  apply(report: DeliveryReport, named?: MessageRef): Promise<ApplyResult>;
}

/** Parses a report kept before its message id was recorded; null when it is not one. */
export function parseDeliveryReport(json: string): DeliveryReport | null {
  try {
    const r = JSON.parse(json) as Partial<Record<keyof DeliveryReport, unknown>>;
    if (
      typeof r.provider !== 'string' ||
      !isProviderId(r.provider) ||
      typeof r.messageId !== 'string' ||
      typeof r.status !== 'string' ||
      !(DELIVERY_STATUSES as readonly string[]).includes(r.status) ||
      typeof r.providerStatus !== 'string' ||
      !(r.errorCode === null || typeof r.errorCode === 'string') ||
      typeof r.at !== 'number' ||
      !(r.phoneNumber === undefined || r.phoneNumber === null || typeof r.phoneNumber === 'string')
    ) {
      return null;
    }
    return r as DeliveryReport;
  } catch {
    return null;
  }
}

export function createReportRepo(deps: {
  redis: RedisClient;
  ks: Keyspace;
  messages: MessageIndex;
  circuits: Circuits;
  now?: () => number;
  /** Publishes the status events a report lists (delivered, undelivered); the sweep covers a failed publish. */
  events?: StatusEvents;
  onEventError?: (err: unknown) => void;
  /** Hears of a named report kept on its attempt until the acceptance (the index's own go to its `onEarly`). */
  onEarly?: (provider: ProviderId, outcome: EarlyOutcome) => void;
}): ReportRepo {
  const { redis, ks, messages, circuits } = deps;
  return {
    async apply(report, named) {
      const json = JSON.stringify({
        provider: report.provider,
        messageId: report.messageId,
        status: report.status,
        providerStatus: report.providerStatus,
        errorCode: report.errorCode,
        at: report.at,
        ...(report.phoneNumber ? { phoneNumber: report.phoneNumber } : {}),
      } satisfies DeliveryReport);
      const ref = named ?? (await messages.lookup(report.provider, report.messageId, json));
      if (ref === 'dropped') return { kind: 'dropped' };
      if (!ref) return { kind: 'deferred' };
      const r = await APPLY_REPORT.run(redis, otpKeys(ks, ref.otpId), {
        now: deps.now?.() ?? 0,
        id: ref.otpId,
        attempt: ref.attempt,
        status: report.status,
        providerStatus: report.providerStatus,
        errorCode: report.errorCode ?? '',
        messageId: report.messageId,
        phoneNumber: report.phoneNumber ?? '',
        minLifeMs: MIN_RESEND_LIFE_MS,
        sweepAfterMs: SWEEP_GRACE_MS,
        named: named ? 1 : 0,
        report: named ? json : '',
        cap: ATTEMPT_EARLY_REPORTS_CAP,
      });
      if (r.outcome === 'deferred') {
        deps.onEarly?.(report.provider, r.trimmed === '1' ? 'trimmed' : 'kept');
        return { kind: 'deferred' };
      }
      if (r.outcome === 'ignored') {
        const reason = r.reason === 'unknown_otp' || r.reason === 'number_mismatch' ? r.reason : 'stale';
        return { kind: 'ignored', reason };
      }
      // a test number's simulated non-delivery (message id `test-...`, set by the worker) says nothing of the provider
      if (r.negative === '1' && !report.messageId.startsWith('test-')) {
        await circuits.failure(report.provider, 'undelivered');
      }
      if (r.event === 'delivered' || r.event === 'undelivered') {
        await publishQuietly(deps.events, ref.otpId, r.event, ref.attempt, deps.onEventError);
      }
      return {
        kind: 'applied',
        otpId: ref.otpId,
        attempt: ref.attempt,
        deliveryStatus: r.ds as DeliveryStatus,
        changed: r.changed === '1',
        callingCode: r.cc ?? '',
        resend: r.resend === '1' ? { otpId: ref.otpId, after: ref.attempt } : null,
      };
    },
  };
}
