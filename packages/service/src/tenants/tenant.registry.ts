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
    try {
      doc = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
    } catch (e) {
      throw new ConfigError([
        `TENANTS_FILE ${file} is not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`,
      ]);
    }
  }
  const set = parseTenants(doc, {
    apiKeys: config.api.keys,
    production: config.env === 'production',
    allowInsecureHttp: false,
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
