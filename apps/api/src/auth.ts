import { createHash } from 'node:crypto';
import type { ApiKey } from '@otp-gateway/core';
import { GatewayError } from '@otp-gateway/core';
import type { FastifyRequest } from 'fastify';

const digest = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * Resolves `Authorization: Bearer <secret>` to the API key's name. Secrets are looked up by their SHA-256,
 * so the lookup's timing says nothing about how close a guess was.
 */
export function createAuthenticator(
  apiKeys: readonly ApiKey[] | (() => ReadonlyMap<string, string>),
): (req: FastifyRequest) => string {
  // A function: the keys as they stand now (TENANTS_FILE, reloaded on SIGHUP), by their secret's SHA-256.
  const fixed = typeof apiKeys === 'function' ? null : new Map(apiKeys.map((k) => [digest(k.secret), k.name]));
  const current = typeof apiKeys === 'function' ? apiKeys : () => fixed!;
  return (req) => {
    const header = req.headers.authorization;
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    const name = m?.[1] ? current().get(digest(m[1])) : undefined;
    if (!name) throw new GatewayError(401, 'unauthorized', 'send Authorization: Bearer <API key>');
    return name;
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The calling API key's name, set by the auth hook on /v1 routes. */
    apiKeyName: string;
    /** The OTP a request created or approved, for its log line. */
    otpId: string | null;
  }
}
