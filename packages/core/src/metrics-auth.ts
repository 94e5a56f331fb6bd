import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * The check of `/metrics` requests when METRICS_TOKEN is set: `Authorization: Bearer <token>`, compared in
 * constant time. Without a token every request passes (the metrics port is then to be kept private).
 */
export function metricsAuthorizer(token: string | null): (authorization: string | undefined) => boolean {
  if (token === null) return () => true;
  const expected = digest(`Bearer ${token}`);
  return (authorization) => timingSafeEqual(digest(authorization ?? ''), expected);
}
