import { createHash } from 'node:crypto';
import { isSupportedCountry } from 'libphonenumber-js/max';
import { API_SECRET, type ApiKey } from './config.js';
import { ConfigError } from './errors.js';
import { CODE_LENGTHS } from './secrets.js';
import { webhookUrlProblem } from './status-webhooks.config.js';
import { webhookSecretKey } from './status-webhooks.js';

/**
 * Settings per API key (TENANTS_FILE, YAML or JSON), one entry per key name under `keys:`. Every field but the
 * secret is optional: what is absent follows the gateway-wide variables.
 */
export interface Tenant {
  readonly name: string;
  /** SHA-256 (hex) of the key's secret: the file may hold either the secret or its digest. */
  readonly secretSha256: string;
  /** Where this key's status events go; null: STATUS_WEBHOOK_URL (if any). */
  readonly webhook: { readonly url: string; readonly secrets: readonly string[] } | null;
  /** Its SMS sender (alphanumeric id of 3-11 characters, or an E.164 number); null: the provider's configured one. */
  readonly sender: string | null;
  /** Shown in its messages (`{brand}`); null: SMS_BRAND. */
  readonly brand: string | null;
  /** Templates by locale, on top of SMS_TEMPLATE_* and the built-in ones. */
  readonly templates: Readonly<Record<string, string>>;
  readonly ttlSeconds: number | null;
  readonly codeLength: number | null;
  /** ISO codes; null: OTP_ALLOWED_COUNTRIES. */
  readonly allowedCountries: ReadonlySet<string> | null;
  /** Test numbers (E.164) of this key: never sent to a provider (see TestNumber). */
  readonly testNumbers: ReadonlyMap<string, TestNumber>;
  /**
   * Its provider order by ISO country, `*` for its other countries; a country it does not name (and no `*`)
   * follows SMS_ROUTES, then SMS_PROVIDERS. Empty: the gateway-wide routes.
   */
  readonly routes: ReadonlyMap<string, readonly string[]>;
  /** Its daily budgets (UTC days): SMS count and spend in SMS_PRICE_CURRENCY; null: GUARD_DAILY_*_PER_KEY. */
  readonly budgets: { readonly dailySms: number | null; readonly dailySpend: number | null };
}

/** What a test number simulates after its (fake) acceptance. */
export const TEST_OUTCOMES = ['delivered', 'undelivered', 'no_receipt'] as const;
export type TestOutcome = (typeof TEST_OUTCOMES)[number];

/**
 * A test number: its OTPs never reach a provider. The worker records an acceptance and simulates `outcome`:
 * `delivered`; `undelivered` (the first attempt is reported undelivered, the failover's delivered); `no_receipt`
 * (no report ever comes). `code`: a fixed code that verifies (app-store review); null: a random one as usual.
 */
export interface TestNumber {
  readonly code: string | null;
  readonly outcome: TestOutcome;
}

/** Every key the API accepts, by name, and by its secret's digest. */
export interface TenantSet {
  readonly byName: ReadonlyMap<string, Tenant>;
  /** SHA-256 hex of a secret → key name. */
  readonly byDigest: ReadonlyMap<string, string>;
}

export const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');

const FIELDS = new Set([
  'secret',
  'secretSha256',
  'webhook',
  'brand',
  'sender',
  'templates',
  'ttlSeconds',
  'codeLength',
  'allowedCountries',
  'testNumbers',
  'routes',
  'budgets',
]);

/**
 * Parses a TENANTS_FILE document (already read as YAML or JSON) and merges it with API_KEYS: a key in both takes
 * the file's entry (its secret and settings); a key only in API_KEYS keeps the gateway-wide settings. Throws one
 * ConfigError naming every problem (never echoing a secret).
 */
export function parseTenants(
  doc: unknown,
  ctx: {
    apiKeys: readonly ApiKey[];
    production: boolean;
    allowInsecureHttp: boolean;
    allowPrivateNetworks: boolean;
    /** OTP_CODE_LENGTH: a fixed test code must have the key's code length. */
    defaultCodeLength?: number;
    /** SMS_PROVIDERS: the providers a route may name (any known one when absent). */
    providers?: readonly string[];
  },
): TenantSet {
  const problems: string[] = [];
  const byName = new Map<string, Tenant>();
  for (const k of ctx.apiKeys) {
    byName.set(k.name, {
      name: k.name,
      secretSha256: sha256Hex(k.secret),
      webhook: null,
      sender: null,
      brand: null,
      templates: {},
      ttlSeconds: null,
      codeLength: null,
      allowedCountries: null,
      testNumbers: new Map(),
      routes: new Map(),
      budgets: { dailySms: null, dailySpend: null },
    });
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (doc !== null && doc !== undefined && (typeof keys !== 'object' || keys === null || Array.isArray(keys))) {
    problems.push('TENANTS_FILE must hold `keys:`, a map from API key name to its settings');
  }
  const entries = keys && typeof keys === 'object' && !Array.isArray(keys) ? Object.entries(keys) : [];
  for (const [name, raw] of entries) {
    const where = `TENANTS_FILE key ${name}`;
    const before = problems.length;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) problems.push(`${where}: the name must be 1-64 letters, digits or _.-`);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push(`${where}: must be a map of settings`);
      continue;
    }
    const e = raw as Record<string, unknown>;
    for (const f of Object.keys(e)) if (!FIELDS.has(f)) problems.push(`${where}: unknown setting "${f}"`);
    let digest = '';
    if (typeof e.secret === 'string' && e.secretSha256 === undefined) {
      if (!API_SECRET.test(e.secret)) {
        problems.push(`${where}: secret must be at least 16 printable characters without spaces`);
      }
      digest = sha256Hex(e.secret);
    } else if (typeof e.secretSha256 === 'string' && e.secret === undefined) {
      if (!/^[0-9a-f]{64}$/i.test(e.secretSha256)) problems.push(`${where}: secretSha256 must be 64 hex digits`);
      digest = e.secretSha256.toLowerCase();
    } else problems.push(`${where}: give exactly one of secret and secretSha256`);

    let webhook: Tenant['webhook'] = null;
    if (e.webhook !== undefined) {
      const w = e.webhook as { url?: unknown; secrets?: unknown };
      const secrets = typeof w?.secrets === 'string' ? [w.secrets] : w?.secrets;
      if (typeof w?.url !== 'string' || !Array.isArray(secrets) || secrets.length === 0) {
        problems.push(`${where}: webhook needs url and secrets (whsec_...)`);
      } else {
        const p = webhookUrlProblem(w.url, ctx);
        if (p) problems.push(`${where}: webhook url ${p}`);
        secrets.forEach((s, i) => {
          if (typeof s !== 'string' || !webhookSecretKey(s)) {
            problems.push(`${where}: webhook secret ${i + 1} must be whsec_ followed by base64 of 24 bytes or more`);
          }
        });
        webhook = { url: w.url, secrets: Object.freeze(secrets.map(String)) };
      }
    }
    const optString = (f: string, max: number): string | null => {
      if (e[f] === undefined) return null;
      if (typeof e[f] !== 'string' || e[f].length === 0 || e[f].length > max) {
        problems.push(`${where}: ${f} must be text of 1 to ${max} characters`);
        return null;
      }
      return e[f] as string;
    };
    const optInt = (f: string, min: number, max: number): number | null => {
      if (e[f] === undefined) return null;
      if (!Number.isInteger(e[f]) || (e[f] as number) < min || (e[f] as number) > max) {
        problems.push(`${where}: ${f} must be a whole number from ${min} to ${max}`);
        return null;
      }
      return e[f] as number;
    };
    const templates: Record<string, string> = {};
    if (e.templates !== undefined) {
      if (typeof e.templates !== 'object' || e.templates === null || Array.isArray(e.templates)) {
        problems.push(`${where}: templates must map a locale to its text`);
      } else {
        for (const [l, t] of Object.entries(e.templates)) {
          if (typeof t !== 'string') problems.push(`${where}: template ${l} must be text`);
          else templates[l.toLowerCase().replace('_', '-')] = t;
        }
      }
    }
    let allowedCountries: Set<string> | null = null;
    if (e.allowedCountries !== undefined) {
      const list = e.allowedCountries;
      // an empty list would allow every country (an empty set means no restriction): leave the key out instead
      if (
        !Array.isArray(list) ||
        list.length === 0 ||
        list.some((c) => typeof c !== 'string' || !/^[A-Za-z]{2}$/.test(c) || !isSupportedCountry(c.toUpperCase()))
      ) {
        problems.push(
          `${where}: allowedCountries must be a list of ISO 3166 alpha-2 codes of countries with numbers, at least one (leave it out for the gateway's)`,
        );
      } else allowedCountries = new Set(list.map((c: string) => c.toUpperCase()));
    }
    const testNumbers = new Map<string, TestNumber>();
    if (e.testNumbers !== undefined) {
      if (typeof e.testNumbers !== 'object' || e.testNumbers === null || Array.isArray(e.testNumbers)) {
        problems.push(`${where}: testNumbers must map an E.164 number to {code, outcome}`);
      } else {
        for (const [number, v] of Object.entries(e.testNumbers)) {
          const t = (v ?? {}) as { code?: unknown; outcome?: unknown };
          const outcome = t.outcome ?? 'delivered';
          if (!/^\+[1-9]\d{6,14}$/.test(number)) problems.push(`${where}: test number ${number} is not E.164`);
          if (!(TEST_OUTCOMES as readonly unknown[]).includes(outcome)) {
            problems.push(`${where}: test number ${number} outcome must be one of ${TEST_OUTCOMES.join(', ')}`);
          }
          if (t.code !== undefined && (typeof t.code !== 'string' || !/^\d{6,10}$/.test(t.code))) {
            problems.push(`${where}: test number ${number} code must be 6 to 10 digits (as text)`);
          }
          testNumbers.set(number, {
            code: typeof t.code === 'string' ? t.code : null,
            outcome: outcome as TestOutcome,
          });
        }
      }
    }
    const routes = new Map<string, readonly string[]>();
    if (e.routes !== undefined) {
      const providers = ctx.providers ?? ['twilio', 'octopush'];
      if (typeof e.routes !== 'object' || e.routes === null || Array.isArray(e.routes)) {
        problems.push(`${where}: routes must map an ISO country (or *) to a list of providers`);
      } else {
        for (const [rawCc, list] of Object.entries(e.routes)) {
          const cc = rawCc === '*' ? '*' : rawCc.toUpperCase();
          if (cc !== '*' && !(/^[A-Z]{2}$/.test(cc) && isSupportedCountry(cc))) {
            problems.push(`${where}: routes: "${rawCc}" is not an ISO 3166 alpha-2 country code`);
          } else if (!Array.isArray(list) || list.length === 0) {
            problems.push(`${where}: routes ${rawCc} must be a list of providers`);
          } else {
            const bad = list.filter((p) => typeof p !== 'string' || !providers.includes(p));
            if (bad.length > 0) {
              problems.push(
                `${where}: routes ${rawCc} names ${bad.map(String).join(', ')}, not among SMS_PROVIDERS (${providers.join(', ')})`,
              );
            } else if (new Set(list).size !== list.length)
              problems.push(`${where}: routes ${rawCc} repeats a provider`);
            else routes.set(cc, Object.freeze([...(list as string[])]));
          }
        }
      }
    }
    const budgets = { dailySms: null as number | null, dailySpend: null as number | null };
    if (e.budgets !== undefined) {
      const b = e.budgets as { dailySms?: unknown; dailySpend?: unknown } | null;
      if (typeof b !== 'object' || b === null || Array.isArray(b)) {
        problems.push(`${where}: budgets must be a map with dailySms and/or dailySpend`);
      } else {
        for (const f of Object.keys(b)) {
          if (f !== 'dailySms' && f !== 'dailySpend') problems.push(`${where}: budgets: unknown setting "${f}"`);
        }
        if (b.dailySms !== undefined) {
          if (!Number.isInteger(b.dailySms) || (b.dailySms as number) < 0 || (b.dailySms as number) > 1e9) {
            problems.push(`${where}: budgets.dailySms must be a whole number from 0 (none) to 1000000000`);
          } else budgets.dailySms = b.dailySms as number;
        }
        if (b.dailySpend !== undefined) {
          if (typeof b.dailySpend !== 'number' || !(b.dailySpend >= 0) || b.dailySpend > 1e9) {
            problems.push(`${where}: budgets.dailySpend must be an amount from 0 (none), in SMS_PRICE_CURRENCY`);
          } else budgets.dailySpend = b.dailySpend;
        }
      }
    }
    const codeLength = optInt('codeLength', CODE_LENGTHS.min, CODE_LENGTHS.max);
    const sender = e.sender === undefined ? null : e.sender;
    if (
      sender !== null &&
      (typeof sender !== 'string' ||
        !(/^(?=.*[A-Za-z])[A-Za-z0-9 ]{3,11}$/.test(sender) || /^\+[1-9]\d{6,14}$/.test(sender)))
    ) {
      problems.push(`${where}: sender must be an alphanumeric sender id of 3-11 characters or an E.164 number`);
    }
    for (const [number, t] of testNumbers) {
      const want = codeLength ?? ctx.defaultCodeLength;
      if (t.code !== null && want !== undefined && t.code.length !== want) {
        problems.push(`${where}: test number ${number} code must have ${want} digits (the key's code length)`);
      }
    }
    const tenant: Tenant = {
      name,
      secretSha256: digest,
      webhook,
      sender: typeof sender === 'string' ? sender : null,
      brand: optString('brand', 30),
      templates: Object.freeze(templates),
      ttlSeconds: optInt('ttlSeconds', 30, 600),
      codeLength,
      allowedCountries,
      testNumbers,
      routes,
      budgets: Object.freeze(budgets),
    };
    if (problems.length === before) byName.set(name, Object.freeze(tenant));
  }
  const byDigest = new Map<string, string>();
  for (const t of byName.values()) {
    const other = byDigest.get(t.secretSha256);
    if (other !== undefined) problems.push(`TENANTS_FILE keys ${other} and ${t.name} share a secret`);
    byDigest.set(t.secretSha256, t.name);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({ byName, byDigest });
}
