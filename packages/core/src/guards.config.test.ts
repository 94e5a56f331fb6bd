import { describe, expect, it } from 'vitest';
import { EnvReader } from './env-reader.js';
import { budgetOf, readGuardsConfig } from './guards.config.js';

describe('GUARD_DAILY_* budgets', () => {
  it('reads SMS counts and spend amounts per country and key, `*` for the rest, none by default for spend', () => {
    const r = new EnvReader({
      GUARD_DAILY_SMS_PER_COUNTRY: 'DE=500,*=100000',
      GUARD_DAILY_SPEND_PER_COUNTRY: 'FR=50,*=12.5',
      GUARD_DAILY_SPEND_PER_KEY: 'shop=0.75',
    });
    const g = readGuardsConfig(r, ['shop']);
    expect(r.problems).toEqual([]);
    expect(budgetOf(g.dailyPerCountry, 'DE')).toBe(500);
    expect(budgetOf(g.dailySpendPerCountry, 'FR')).toBe(50);
    expect(budgetOf(g.dailySpendPerCountry, 'BE')).toBe(12.5);
    expect(budgetOf(g.dailySpendPerKey, 'shop')).toBe(0.75);
    expect(budgetOf(readGuardsConfig(new EnvReader({}), []).dailySpendPerCountry, 'FR')).toBe(0);
  });

  it('names every bad entry: a count that is not whole, an amount that is not a number, an unknown country or key', () => {
    const r = new EnvReader({
      GUARD_DAILY_SMS_PER_COUNTRY: 'DE=1.5',
      GUARD_DAILY_SPEND_PER_COUNTRY: 'FR=lots,XX=3',
      GUARD_DAILY_SPEND_PER_KEY: 'nobody=1',
    });
    readGuardsConfig(r, ['shop']);
    expect(r.problems).toEqual([
      'GUARD_DAILY_SMS_PER_COUNTRY entry "DE=1.5" must be NAME=count (a whole number, 0 for no budget)',
      'GUARD_DAILY_SPEND_PER_COUNTRY entry "FR=lots" must be NAME=amount (in SMS_PRICE_CURRENCY, e.g. 50 or 12.5; 0 for no budget)',
      'GUARD_DAILY_SPEND_PER_COUNTRY entry "XX=3" does not name a known subject ("XX")',
      'GUARD_DAILY_SPEND_PER_KEY entry "nobody=1" does not name a known subject ("nobody")',
    ]);
  });
});
