import {
  type AttemptRecord,
  type DeliveryStatus,
  decodeMetadata,
  type OtpStatus,
  type OtpView,
  type ProviderId,
} from '@otp-gateway/core';
import { ATTEMPT_FIELDS as A, OTP_FIELDS as F } from './otp.record.js';

/** Maps an OTP hash to its public view; a pending OTP past its expiry reads as expired. */
export function toView(id: string, f: Record<string, string>, now: number): OtpView & { keyName: string } {
  const exp = Number(f[F.exp]);
  let status = f[F.status] as OtpStatus;
  if (status === 'pending' && now >= exp) status = 'expired';
  const attempts: AttemptRecord[] = [];
  const n = Number(f[F.na] ?? 0);
  const iso = (ms: string | undefined) => new Date(Number(ms ?? 0)).toISOString();
  for (let i = 1; i <= n; i++) {
    const field = (part: string) => f[`a${i}.${part}`];
    if (!field(A.provider)) continue;
    const cost = field(A.cost);
    attempts.push({
      ...(cost ? { cost: Number(cost), currency: field(A.currency) ?? '' } : {}),
      n: i,
      provider: field(A.provider) as ProviderId,
      outcome: field(A.outcome) as AttemptRecord['outcome'],
      errorCode: field(A.errorCode) || null,
      providerStatus: field(A.providerStatus) || null,
      messageId: field(A.messageId) || null,
      at: iso(field(A.startedAt)),
      updatedAt: iso(field(A.updatedAt)),
    });
  }
  return {
    id,
    keyName: f[F.key]!,
    status,
    deliveryStatus: f[F.ds] as DeliveryStatus,
    provider: (f[F.provider] || null) as ProviderId | null,
    phoneNumber: f[F.phone]!,
    expiresAt: new Date(exp).toISOString(),
    createdAt: new Date(Number(f[F.created])).toISOString(),
    metadata: decodeMetadata(f[F.meta]),
    attempts,
  };
}
