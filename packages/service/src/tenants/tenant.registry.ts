import { readFileSync } from 'node:fs';
import { type Config, ConfigError, parseTenants, type Tenant, type TenantSet } from '@otp-gateway/core';
import { parse as parseYaml } from 'yaml';

/**
 * The API keys and their settings as they stand: API_KEYS merged with TENANTS_FILE (the file's entry wins for a
 * name in both). Loaded at start (a bad file refuses the start, naming every problem) and again on reload()
 * (SIGHUP): a bad file then keeps the settings in force and says why; a key gone from the file (and from
 * API_KEYS) is refused from then on.
 */
export interface TenantRegistry {
  current(): TenantSet;
  /** The settings of a key, or null when it is unknown (revoked). */
  get(name: string): Tenant | null;
  /** Reads the file again. */
  reload(): { ok: true; keys: number } | { ok: false; problems: readonly string[] };
  /** Called after each successful reload (caches of compiled templates). */
  onChange(fn: (set: TenantSet) => void): void;
}

/** Checks beyond the file's own format, e.g. each tenant's templates (the worker and the API pass one). */
export type TenantCheck = (tenant: Tenant) => readonly string[];

function load(config: Config, check?: TenantCheck): TenantSet {
  let doc: unknown = null;
  const file = config.api.tenantsFile;
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError([`TENANTS_FILE ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`]);
    }
    const json = /\.json$/i.test(file);
    try {
      doc = json ? JSON.parse(text) : parseYaml(text);
    } catch (e) {
      throw new ConfigError([
        `TENANTS_FILE ${file} is not valid ${json ? 'JSON' : 'YAML'}: ${whereBroken(e, text, json)}`,
      ]);
    }
  }
  const set = parseTenants(doc, {
    apiKeys: config.api.keys,
    production: config.env === 'production',
    // a key's own endpoint follows the same rule as STATUS_WEBHOOK_URL
    allowInsecureHttp: config.statusWebhooks.allowInsecureHttp,
    allowPrivateNetworks: config.statusWebhooks.allowPrivateNetworks,
    defaultCodeLength: config.otp.codeLength,
    providers: config.providers.order,
  });
  const problems = check ? [...set.byName.values()].flatMap((t) => check(t)) : [];
  if (problems.length > 0) throw new ConfigError(problems);
  return set;
}

/** Loads the settings now (throws ConfigError naming every problem). */
export function createTenantRegistry(config: Config, check?: TenantCheck): TenantRegistry {
  let set = load(config, check);
  const listeners: ((s: TenantSet) => void)[] = [];
  return {
    current: () => set,
    get: (name) => set.byName.get(name) ?? null,
    reload() {
      try {
        set = load(config, check);
      } catch (e) {
        return { ok: false, problems: e instanceof ConfigError ? e.problems : [(e as Error).message] };
      }
      for (const fn of listeners) fn(set);
      return { ok: true, keys: set.byName.size };
    },
    onChange: (fn) => {
      listeners.push(fn);
    },
  };
}

/**
 * Where a tenants file does not parse, never what it holds there: node's JSON errors quote the text around the
 * error, which may be a key's secret. YAML's first line says where (line, column) without the text.
 */
function whereBroken(e: unknown, text: string, json: boolean): string {
  const message = e instanceof Error ? e.message : String(e);
  if (!json) return message.split('\n')[0] ?? 'unreadable';
  const at = /position (\d+)/.exec(message);
  // node 20+ words some errors with the text around them and no position: keep the words before the quote
  if (!at) return /^Unexpected token '.'/.exec(message)?.[0] ?? 'unreadable';
  const before = text.slice(0, Number(at[1])).split('\n');
  return `at line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`;
}
