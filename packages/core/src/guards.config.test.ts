import { describe, expect, it } from 'vitest';
import { expectedPrice, loadConfig, tenantSpendProblems } from './config.js';
import { EnvReader } from './env-reader.js';
import { ConfigError } from './errors.js';
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

describe('per-key budgets with TENANTS_FILE', () => {
  it('regression: a key named only in TENANTS_FILE is accepted (the start refused it, checking API_KEYS alone)', () => {
    const env = {
      OTP_SECRET: 'unit-test-secret-0123456789abcdefghijklmnop',
      API_KEYS: 'shop:shop-secret-0123456789',
      GUARD_DAILY_SMS_PER_KEY: 'fileonly=50,*=1000',
    };
    expect(() => loadConfig(env, 'api')).toThrow(/does not name a known subject \("fileonly"\)/);
    const c = loadConfig({ ...env, TENANTS_FILE: '/etc/otp/tenants.yaml' }, 'api');
    expect(budgetOf(c.guards.dailyPerKey, 'fileonly')).toBe(50);
  });
});

describe('spend budgets the price table cannot price', () => {
  const base = {
    OTP_SECRET: 'unit-test-secret-0123456789abcdefghijklmnop',
    API_KEYS: 'shop:shop-secret-0123456789',
    SMS_PROVIDERS: 'twilio,octopush',
    TWILIO_FROM: '+15005550006',
    // what the worker needs besides
    TWILIO_ACCOUNT_SID: 'ACunit000000000000000000000000000',
    TWILIO_AUTH_TOKEN: 'unit-twilio-token',
    OCTOPUSH_API_KEY: 'unit-octopush-key',
    OCTOPUSH_API_LOGIN: 'unit@example.com',
  };
  const problems = (env: Record<string, string>, app: 'api' | 'worker' = 'api') => {
    try {
      loadConfig({ ...base, ...env }, app);
      return [];
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      return e.problems;
    }
  };

  it('refuses to start the API with a spend budget no send would be weighed against, and says why', () => {
    expect(problems({ GUARD_DAILY_SPEND_PER_COUNTRY: 'FR=50' })).toEqual([
      expect.stringMatching(
        /^GUARD_DAILY_SPEND_PER_COUNTRY FR=50 would never apply: SMS_PRICES has no price above 0 for FR through the first provider of its route/,
      ),
    ]);
    // a price for another country only, through a provider FR's route does not use, or a price of 0
    expect(
      problems({ GUARD_DAILY_SPEND_PER_COUNTRY: 'FR=50', SMS_PRICES: 'twilio:DE=0.07', SMS_ROUTES: 'FR=octopush' }),
    ).toHaveLength(1);
    expect(problems({ GUARD_DAILY_SPEND_PER_COUNTRY: 'FR=50', SMS_PRICES: 'twilio:FR=0' })).toHaveLength(1);
    expect(problems({ GUARD_DAILY_SPEND_PER_COUNTRY: '*=500' })).toEqual([
      expect.stringContaining('SMS_PRICES has no price above 0 for any provider in SMS_PROVIDERS'),
    ]);
    // prices only for a provider that is not in use weigh nothing
    expect(
      problems({ SMS_PROVIDERS: 'twilio', GUARD_DAILY_SPEND_PER_KEY: 'shop=5', SMS_PRICES: 'octopush:*=0.05' }),
    ).toEqual([
      expect.stringMatching(
        /^GUARD_DAILY_SPEND_PER_KEY would never apply: SMS_PRICES has no price above 0 for any provider/,
      ),
    ]);
  });

  it("refuses an API key's own spend budget (TENANTS_FILE) on the same rule", () => {
    const config = loadConfig(base, 'api');
    const shop = { name: 'shop', budgets: { dailySpend: 12.5 } };
    expect(tenantSpendProblems(shop, config)).toEqual([
      expect.stringMatching(
        /^TENANTS_FILE key shop: budgets.dailySpend would never apply: SMS_PRICES has no price above 0/,
      ),
    ]);
    expect(tenantSpendProblems({ name: 'shop', budgets: { dailySpend: 0 } }, config)).toEqual([]);
    expect(tenantSpendProblems({ name: 'shop', budgets: { dailySpend: null } }, config)).toEqual([]);
    expect(tenantSpendProblems(shop, loadConfig({ ...base, SMS_PRICES: 'twilio:*=0.05' }, 'api'))).toEqual([]);
    expect(tenantSpendProblems(shop, loadConfig({ ...base, GUARD_ENABLED: 'false' }, 'api'))).toEqual([]);
  });

  it('accepts budgets the table prices (by country or `*`), budgets of 0, and the guards off; other apps do not check', () => {
    expect(problems({ GUARD_DAILY_SPEND_PER_COUNTRY: 'FR=50,*=500', SMS_PRICES: 'octopush:*=0.05' })).toEqual([]);
    expect(problems({ GUARD_DAILY_SPEND_PER_COUNTRY: 'FR=50', SMS_PRICES: 'octopush:FR=0.045' })).toEqual([]);
    expect(problems({ GUARD_DAILY_SPEND_PER_KEY: 'shop=5', SMS_PRICES: 'twilio:DE=0.07' })).toEqual([]);
    expect(problems({ GUARD_DAILY_SPEND_PER_COUNTRY: 'FR=0', GUARD_DAILY_SPEND_PER_KEY: 'shop=0' })).toEqual([]);
    expect(problems({ GUARD_DAILY_SPEND_PER_COUNTRY: 'FR=50', GUARD_ENABLED: 'false' })).toEqual([]);
    expect(problems({ GUARD_DAILY_SPEND_PER_COUNTRY: 'FR=50' }, 'worker')).toEqual([]);
  });
});

describe('expectedPrice: what a send is weighed at against spend budgets', () => {
  const providers = loadConfig(
    {
      OTP_SECRET: 'unit-test-secret-0123456789abcdefghijklmnop',
      API_KEYS: 'shop:shop-secret-0123456789',
      SMS_PROVIDERS: 'twilio,octopush',
      TWILIO_FROM: '+15005550006',
      SMS_ROUTES: 'BE=octopush,twilio',
      SMS_PRICES: 'twilio:*=0.01,octopush:*=0.05,octopush:DE=0.2',
    },
    'api',
  ).providers;

  it('follows the route the worker takes: the key own for the country, its own `*`, SMS_ROUTES, SMS_PROVIDERS', () => {
    expect(expectedPrice(providers, 'FR')).toBe(0.01);
    expect(expectedPrice(providers, 'BE')).toBe(0.05);
    const own = new Map([
      ['DE', ['octopush', 'twilio']],
      ['*', ['octopush']],
    ]);
    expect(expectedPrice(providers, 'DE', own)).toBe(0.2);
    expect(expectedPrice(providers, 'FR', own)).toBe(0.05);
    // the key's own `*` comes before SMS_ROUTES, as in the worker's plan
    expect(expectedPrice(providers, 'BE', new Map([['*', ['twilio']]]))).toBe(0.01);
    expect(expectedPrice(providers, 'FR', new Map())).toBe(0.01);
  });
});
