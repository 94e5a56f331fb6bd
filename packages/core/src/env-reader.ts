/** Reads variables from an env object, collecting every problem so one error can name them all. */
export class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: NodeJS.ProcessEnv) {}

  str(name: string): string | null {
    const v = this.env[name]?.trim();
    return v ? v : null;
  }

  required(name: string, why: string): string {
    const v = this.str(name);
    if (v === null) this.problems.push(`${name} is required (${why})`);
    return v ?? '';
  }

  int(name: string, def: number, min: number, max: number): number {
    const raw = this.str(name);
    if (raw === null) return def;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      this.problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}")`);
      return def;
    }
    return n;
  }

  bool(name: string, def: boolean): boolean {
    const raw = this.str(name)?.toLowerCase();
    if (raw === undefined || raw === null) return def;
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
    if (['0', 'false', 'no', 'off'].includes(raw)) return false;
    this.problems.push(`${name} must be true or false (got "${raw}")`);
    return def;
  }

  /** A URL of the given kind: http(s) for providers and callbacks, redis(s) for the store. */
  url(name: string, def: string | null, kind: 'http' | 'redis' = 'http'): string | null {
    const raw = this.str(name) ?? def;
    if (raw === null) return null;
    const protocols = kind === 'http' ? ['http:', 'https:'] : ['redis:', 'rediss:'];
    try {
      if (!protocols.includes(new URL(raw).protocol)) throw new Error('protocol');
      return raw.replace(/\/+$/, '');
    } catch {
      // never echo credentials the URL may carry
      const what = kind === 'http' ? 'an http(s) URL' : 'a redis:// or rediss:// URL';
      this.problems.push(`${name} must be ${what} (got "${raw.replace(/\/\/[^/@]*@/, '//***@')}")`);
      return def;
    }
  }
}
