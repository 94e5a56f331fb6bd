import {
  DELIVERY_STATUSES,
  type DeliveryStatus,
  isProviderId,
  type ProviderId,
  type SendJobData,
} from '@otp-gateway/core';
import type { Redis } from 'ioredis';
import { APPLY_REPORT_LUA } from './callbacks.scripts.js';
import { keys, MIN_RESEND_LIFE_MS, PREFIX } from './keys.js';

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
}

/**
 * What applying a report did:
 * - `applied`: the report belongs to attempt `attempt` of `otpId`; `changed` is false for a duplicate or a
 *   late report (statuses only move forward). `deliveryStatus` is the OTP's after the report. `resend` is set
 *   when the attempt that counted was not delivered and the OTP can still go out through another provider:
 *   the caller enqueues it (job id `resendJobId(otpId, attempt)`).
 * - `ignored`: the OTP is gone (`unknown_otp`) or the message index no longer matches its attempt (`stale`).
 * - `deferred`: the message id is not recorded yet (the report beat the worker's ACCEPT); the report is kept
 *   for an hour in `otp:cb:` and applied by the worker when it records the id. A report for a message the
 *   gateway never sent just expires there.
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
      resend: SendJobData | null;
    }
  | { kind: 'ignored'; reason: 'unknown_otp' | 'stale' }
  | { kind: 'deferred' };

/** Records provider delivery reports on OTPs. One round trip per report. */
export interface CallbackRepo {
  apply(report: DeliveryReport, now: number): Promise<ApplyResult>;
}

/** Early reports kept per message id, newest last. */
export const EARLY_REPORTS_CAP = 20;
/** How long early reports wait for their message id. */
export const EARLY_REPORTS_TTL_MS = 3600_000;

/** Job id of the resend that follows a non-delivery of `attempt`: one resend per attempt. */
export const resendJobId = (otpId: string, attempt: number): string => `${otpId}-r${attempt}`;

/** Parses a report queued in `otp:cb:` (as ACCEPT returns them); null when it is not one. */
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
      typeof r.at !== 'number'
    ) {
      return null;
    }
    return r as DeliveryReport;
  } catch {
    return null;
  }
}

interface ScriptRedis extends Redis {
  otpApplyReport(...args: (string | number)[]): Promise<(string | number | null)[]>;
}

/** Builds the callback repository on a connection (registers its script on it). */
export function createCallbackRepo(redis: Redis, opts: { minResendLifeMs?: number } = {}): CallbackRepo {
  const r = redis as ScriptRedis;
  if (typeof r.otpApplyReport !== 'function') {
    r.defineCommand('otpApplyReport', { numberOfKeys: 3, lua: APPLY_REPORT_LUA });
  }
  const minLife = opts.minResendLifeMs ?? MIN_RESEND_LIFE_MS;

  return {
    async apply(report, now) {
      const json = JSON.stringify({
        provider: report.provider,
        messageId: report.messageId,
        status: report.status,
        providerStatus: report.providerStatus,
        errorCode: report.errorCode,
        at: report.at,
      } satisfies DeliveryReport);
      const res = await r.otpApplyReport(
        keys.message(report.provider, report.messageId),
        keys.earlyCallbacks(report.provider, report.messageId),
        keys.circuit(report.provider),
        now,
        json,
        report.status,
        report.providerStatus,
        report.errorCode ?? '',
        report.messageId,
        minLife,
        PREFIX,
        EARLY_REPORTS_CAP,
        EARLY_REPORTS_TTL_MS,
      );
      if (res[0] === 'deferred') return { kind: 'deferred' };
      if (res[0] === 'ignored') return { kind: 'ignored', reason: res[1] === 'unknown_otp' ? 'unknown_otp' : 'stale' };
      const otpId = String(res[1]);
      const attempt = Number(res[2]);
      const resend: SendJobData | null =
        res[5] === 1
          ? {
              otpId,
              to: String(res[6] ?? ''),
              locale: String(res[7] ?? ''),
              sealedCode: String(res[8] ?? ''),
              expiresAt: Number(res[9]),
              callingCode: String(res[10] ?? ''),
            }
          : null;
      return {
        kind: 'applied',
        otpId,
        attempt,
        deliveryStatus: String(res[3]) as DeliveryStatus,
        changed: res[4] === 1,
        callingCode: String((res[5] === 1 ? res[10] : res[6]) ?? ''),
        resend,
      };
    },
  };
}
