import type { AttemptRecord, DeliveryStatus, OtpStatus, OtpView, ProviderId } from '@otp-gateway/core';

/** Maps an OTP hash to its public view; a pending OTP past its expiry reads as expired. */
export function toView(f: Record<string, string>, now: number): OtpView & { keyName: string } {
  const exp = Number(f['exp']);
  let status = f['status'] as OtpStatus;
  if (status === 'pending' && now >= exp) status = 'expired';
  const attempts: AttemptRecord[] = [];
  const n = Number(f['na'] ?? 0);
  const iso = (ms: string | undefined) => new Date(Number(ms ?? 0)).toISOString();
  for (let i = 1; i <= n; i++) {
    const a = `a${i}.`;
    if (!f[`${a}p`]) continue;
    attempts.push({
      n: i,
      provider: f[`${a}p`] as ProviderId,
      outcome: f[`${a}o`] as AttemptRecord['outcome'],
      errorCode: f[`${a}e`] || null,
      providerStatus: f[`${a}s`] || null,
      messageId: f[`${a}m`] || null,
      at: iso(f[`${a}t`]),
      updatedAt: iso(f[`${a}u`]),
    });
  }
  return {
    id: f['id']!,
    keyName: f['key']!,
    status,
    deliveryStatus: f['ds'] as DeliveryStatus,
    provider: (f['provider'] || null) as ProviderId | null,
    phoneNumber: f['phone']!,
    expiresAt: new Date(exp).toISOString(),
    createdAt: new Date(Number(f['created'])).toISOString(),
    attempts,
  };
}
