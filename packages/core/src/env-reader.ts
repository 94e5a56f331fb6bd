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

  url(name: string, def: string | null): string | null {
    const raw = this.str(name) ?? def;
    if (raw === null) return null;
    try {
      const u = new URL(raw);
      if (!/^(https?|rediss?):$/.test(u.protocol)) throw new Error('protocol');
      return raw.replace(/\/+$/, '');
    } catch {
      // never echo credentials the URL may carry
      this.problems.push(`${name} must be a URL (got "${raw.replace(/\/\/[^/@]*@/, '//***@')}")`);
      return def;
    }
  }
}
