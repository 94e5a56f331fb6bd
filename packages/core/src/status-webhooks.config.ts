import type { EnvReader } from './env-reader.js';
import { isPrivateAddress, webhookSecretKey } from './status-webhooks.js';

/** Where status events go and how they are delivered (STATUS_WEBHOOK_*, WEBHOOK_*). */
export interface StatusWebhookConfig {
  /** STATUS_WEBHOOK_URL: the gateway-wide endpoint; null: none (a key's own endpoint may still be set). */
  readonly url: string | null;
  /** STATUS_WEBHOOK_SECRET: `whsec_...` secrets, comma- or space-separated; every one signs (rotation). */
  readonly secrets: readonly string[];
  /** WEBHOOK_ALLOW_PRIVATE_NETWORKS: endpoints on loopback or private addresses allowed (development, tests). */
  readonly allowPrivateNetworks: boolean;
  /** ALLOW_INSECURE_HTTP: http:// endpoints allowed in production (the gateway-wide one and each key's own). */
  readonly allowInsecureHttp: boolean;
  /** WEBHOOK_TIMEOUT_MS: one try's time limit (default 10 s). */
  readonly timeoutMs: number;
  /** WEBHOOK_RETRY_BASE_MS: the first retry's delay; each next one doubles, with jitter, up to an hour. */
  readonly retryBaseMs: number;
  /** WEBHOOK_MAX_AGE_SECONDS: an event still not delivered after this long is given up (default a day). */
  readonly maxAgeSeconds: number;
  /** WEBHOOK_CONCURRENCY: deliveries in flight per worker process. */
  readonly concurrency: number;
}

/** Reads the status webhook variables, adding each problem to the reader. */
export function readStatusWebhookConfig(
  r: EnvReader,
  opts: { production: boolean; allowInsecureHttp: boolean },
): StatusWebhookConfig {
  const url = r.url('STATUS_WEBHOOK_URL', null);
  const secrets = (r.str('STATUS_WEBHOOK_SECRET') ?? '').split(/[\s,]+/).filter(Boolean);
  const allowPrivateNetworks = r.bool('WEBHOOK_ALLOW_PRIVATE_NETWORKS', false);
  if (url) {
    if (url.startsWith('redis')) r.problems.push('STATUS_WEBHOOK_URL must be an http(s) URL');
    if (secrets.length === 0) r.problems.push('STATUS_WEBHOOK_SECRET is required with STATUS_WEBHOOK_URL (whsec_...)');
    const problem = webhookUrlProblem(url, { ...opts, allowPrivateNetworks });
    if (problem) r.problems.push(`STATUS_WEBHOOK_URL ${problem}`);
  }
  // secrets are named by position: their text is secret
  secrets.forEach((s, i) => {
    if (!webhookSecretKey(s)) {
      r.problems.push(`STATUS_WEBHOOK_SECRET entry ${i + 1} must be whsec_ followed by base64 of 24 bytes or more`);
    }
  });
  return {
    url,
    secrets: Object.freeze(secrets),
    allowPrivateNetworks,
    allowInsecureHttp: opts.allowInsecureHttp,
    timeoutMs: r.int('WEBHOOK_TIMEOUT_MS', 10_000, 100, 60_000),
    retryBaseMs: r.int('WEBHOOK_RETRY_BASE_MS', 5000, 10, 3_600_000),
    maxAgeSeconds: r.int('WEBHOOK_MAX_AGE_SECONDS', 86_400, 10, 7 * 86_400),
    concurrency: r.int('WEBHOOK_CONCURRENCY', 20, 1, 1000),
  };
}

/**
 * What is wrong with a status webhook endpoint, judged without DNS (a host name is checked again when each
 * request resolves it): the scheme, TLS in production, an address or `localhost` that is loopback or private.
 */
export function webhookUrlProblem(
  url: string,
  opts: { production: boolean; allowInsecureHttp: boolean; allowPrivateNetworks: boolean },
): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'is not a URL';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'must be http(s)';
  if (u.username || u.password) return 'must not carry credentials';
  if (opts.production && u.protocol === 'http:' && !opts.allowInsecureHttp) {
    return 'must be https:// in production (or set ALLOW_INSECURE_HTTP=true)';
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const local = host === 'localhost' || host.endsWith('.localhost') || (isIPLike(host) && isPrivateAddress(host));
  if (local && !opts.allowPrivateNetworks) {
    return 'points at a loopback or private address (set WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow it)';
  }
  return null;
}

const isIPLike = (h: string) => /^[\d.]+$/.test(h) || h.includes(':');
