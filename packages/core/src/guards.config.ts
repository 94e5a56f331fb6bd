import { isSupportedCountry } from 'libphonenumber-js/max';
import type { EnvReader } from './env-reader.js';

/**
 * The abuse guards' thresholds (GUARD_*), shared by the API processes through Redis. Defaults are set so that a
 * legitimate send-then-verify flow is never refused while a pumping run (many numbers, no verification) is
 * stopped within a few dozen SMS.
 */
export interface GuardsConfig {
  /** GUARD_ENABLED: off only for benchmarks and tests that measure something else. */
  readonly enabled: boolean;
  /** GUARD_RANGE_DIGITS: a number range is the E.164 number without its last N digits (3: 1000 numbers). */
  readonly rangeDigits: number;
  readonly velocity: {
    /** Sends without a verification after them, per range per API key, before the range is blocked. */
    readonly rangeMaxUnverified: number;
    /** The same per country per API key (many ranges of one country). */
    readonly countryMaxUnverified: number;
    /** The window these counts live in, from the first send that counts. */
    readonly windowSeconds: number;
    /** How long a range or country stays blocked once past its limit. */
    readonly cooldownSeconds: number;
  };
  readonly conversion: {
    /** The sliding window of the watch. */
    readonly windowSeconds: number;
    /** Sends needed in the window before the share is judged, per range and per country. */
    readonly rangeMinSends: number;
    readonly countryMinSends: number;
    /** Approved share (percent) under which sends there are throttled. */
    readonly minPercent: number;
    /** While throttled, one send per this many seconds goes through (so the share can recover). */
    readonly throttleSeconds: number;
  };
  /** Daily SMS budgets (UTC days): per ISO country and per API key name, `*` for the others; 0 = none. */
  readonly dailyPerCountry: ReadonlyMap<string, number>;
  readonly dailyPerKey: ReadonlyMap<string, number>;
  /**
   * Daily spend budgets (UTC days) in SMS_PRICE_CURRENCY, per ISO country and per API key name, `*` for the others;
   * 0 = none. A send is weighed at its expected price (the price table's, core's expectedPrice) when it is accepted.
   */
  readonly dailySpendPerCountry: ReadonlyMap<string, number>;
  readonly dailySpendPerKey: ReadonlyMap<string, number>;
}

/** `DE=500,*=100000`: a budget per name, `*` for the rest. */
function readBudgets(
  r: EnvReader,
  name: string,
  raw: string,
  isName: (n: string) => boolean,
  money = false,
): ReadonlyMap<string, number> {
  const out = new Map<string, number>();
  const format = money ? /^\d+(\.\d{1,6})?$/ : /^\d+$/;
  for (const entry of raw.split(',')) {
    if (!entry.trim()) continue;
    const [rawSubject = '', rawN = '', extra] = entry.split('=');
    const subject = rawSubject.trim();
    const n = Number(rawN.trim());
    if (extra !== undefined || !format.test(rawN.trim()) || n > 1e9) {
      r.problems.push(
        money
          ? `${name} entry "${entry.trim()}" must be NAME=amount (in SMS_PRICE_CURRENCY, e.g. 50 or 12.5; 0 for no budget)`
          : `${name} entry "${entry.trim()}" must be NAME=count (a whole number, 0 for no budget)`,
      );
    } else if (subject !== '*' && !isName(subject)) {
      r.problems.push(`${name} entry "${entry.trim()}" does not name a known subject ("${subject}")`);
    } else out.set(subject === '*' ? '*' : subject, n);
  }
  return out;
}

export function readGuardsConfig(r: EnvReader, keyNames: readonly string[]): GuardsConfig {
  const velocityWindow = r.int('GUARD_VELOCITY_WINDOW_SECONDS', 3600, 60, 7 * 86400);
  return {
    enabled: r.bool('GUARD_ENABLED', true),
    rangeDigits: r.int('GUARD_RANGE_DIGITS', 3, 1, 6),
    velocity: {
      rangeMaxUnverified: r.int('GUARD_VELOCITY_RANGE_MAX_UNVERIFIED', 20, 0, 10_000_000),
      countryMaxUnverified: r.int('GUARD_VELOCITY_COUNTRY_MAX_UNVERIFIED', 1000, 0, 10_000_000),
      windowSeconds: velocityWindow,
      cooldownSeconds: r.int('GUARD_VELOCITY_COOLDOWN_SECONDS', 3600, 1, 7 * 86400),
    },
    conversion: {
      windowSeconds: r.int('GUARD_CONVERSION_WINDOW_SECONDS', 3600, 120, 7 * 86400),
      rangeMinSends: r.int('GUARD_CONVERSION_RANGE_MIN_SENDS', 30, 0, 10_000_000),
      countryMinSends: r.int('GUARD_CONVERSION_COUNTRY_MIN_SENDS', 300, 0, 10_000_000),
      minPercent: r.int('GUARD_CONVERSION_MIN_PERCENT', 20, 0, 100),
      throttleSeconds: r.int('GUARD_CONVERSION_THROTTLE_SECONDS', 60, 1, 86400),
    },
    dailyPerCountry: readBudgets(
      r,
      'GUARD_DAILY_SMS_PER_COUNTRY',
      r.str('GUARD_DAILY_SMS_PER_COUNTRY') ?? '*=100000',
      (cc) => /^[A-Z]{2}$/.test(cc) && isSupportedCountry(cc),
    ),
    // keys are named when the process knows them (the API); elsewhere any name is taken as written
    dailyPerKey: readBudgets(
      r,
      'GUARD_DAILY_SMS_PER_KEY',
      r.str('GUARD_DAILY_SMS_PER_KEY') ?? '*=1000000',
      (k) => keyNames.length === 0 || keyNames.includes(k),
    ),
    dailySpendPerCountry: readBudgets(
      r,
      'GUARD_DAILY_SPEND_PER_COUNTRY',
      r.str('GUARD_DAILY_SPEND_PER_COUNTRY') ?? '',
      (cc) => /^[A-Z]{2}$/.test(cc) && isSupportedCountry(cc),
      true,
    ),
    dailySpendPerKey: readBudgets(
      r,
      'GUARD_DAILY_SPEND_PER_KEY',
      r.str('GUARD_DAILY_SPEND_PER_KEY') ?? '',
      (k) => keyNames.length === 0 || keyNames.includes(k),
      true,
    ),
  };
}

/** The budget that applies to `subject`: its own, else `*`, else none (0). */
export const budgetOf = (budgets: ReadonlyMap<string, number>, subject: string): number =>
  budgets.get(subject) ?? budgets.get('*') ?? 0;
