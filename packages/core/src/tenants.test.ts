import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { parseTenants, sha256Hex } from './tenants.js';

const ctx = {
  apiKeys: [],
  production: false,
  allowInsecureHttp: false,
  allowPrivateNetworks: false,
  defaultCodeLength: 6,
};
const WH = `whsec_${Buffer.from('t'.repeat(32)).toString('base64')}`;

const problemsOf = (doc: unknown, c = ctx) => {
  try {
    parseTenants(doc, c);
    return [];
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return [...e.problems];
  }
};

describe('parseTenants: routes and budgets per key', () => {
  it('reads provider routes by country (and *) and daily budgets', () => {
    const set = parseTenants(
      {
        keys: {
          shop: {
            secret: 'shop-secret-0123456789',
            routes: { fr: ['octopush', 'twilio'], '*': ['twilio'] },
            budgets: { dailySms: 500, dailySpend: 12.5 },
          },
        },
      },
      { ...ctx, providers: ['twilio', 'octopush'] },
    );
    const shop = set.byName.get('shop')!;
    expect([...shop.routes]).toEqual([
      ['FR', ['octopush', 'twilio']],
      ['*', ['twilio']],
    ]);
    expect(shop.budgets).toEqual({ dailySms: 500, dailySpend: 12.5 });
  });

  it('names a provider not configured, an unknown country, a repeat and a bad budget', () => {
    expect(
      problemsOf(
        {
          keys: {
            shop: {
              secret: 'shop-secret-0123456789',
              routes: { FR: ['octopush'], XX: ['twilio'], DE: ['twilio', 'twilio'] },
              budgets: { dailySms: 1.5, dailySpend: -1, monthly: 3 },
            },
          },
        },
        { ...ctx, providers: ['twilio'] } as typeof ctx,
      ),
    ).toEqual([
      'TENANTS_FILE key shop: routes FR names octopush, not among SMS_PROVIDERS (twilio)',
      'TENANTS_FILE key shop: routes: "XX" is not an ISO 3166 alpha-2 country code',
      'TENANTS_FILE key shop: routes DE repeats a provider',
      'TENANTS_FILE key shop: budgets: unknown setting "monthly"',
      'TENANTS_FILE key shop: budgets.dailySms must be a whole number from 0 (none) to 1000000000',
      'TENANTS_FILE key shop: budgets.dailySpend must be an amount from 0 (none), in SMS_PRICE_CURRENCY',
    ]);
  });
});

describe('parseTenants', () => {
  it('reads every setting; the file wins over API_KEYS for a name in both', () => {
    const set = parseTenants(
      {
        keys: {
          shop: {
            secret: 'shop-secret-0123456789',
            sender: 'ACMESHOP',
            brand: 'ACME',
            templates: { pt_BR: '{code}' },
            ttlSeconds: 300,
            codeLength: 8,
            allowedCountries: ['fr', 'BE'],
            webhook: { url: 'https://shop.example.com/hooks', secrets: [WH] },
            testNumbers: { '+33612000001': { code: '12345678', outcome: 'undelivered' }, '+33612000002': {} },
          },
        },
      },
      {
        ...ctx,
        apiKeys: [
          { name: 'shop', secret: 'old-secret-0123456789' },
          { name: 'legacy', secret: 'legacy-secret-012345' },
        ],
      },
    );
    const shop = set.byName.get('shop')!;
    expect(shop).toMatchObject({
      sender: 'ACMESHOP',
      brand: 'ACME',
      ttlSeconds: 300,
      codeLength: 8,
      templates: { 'pt-br': '{code}' },
    });
    expect([...shop.allowedCountries!]).toEqual(['FR', 'BE']);
    expect(shop.testNumbers.get('+33612000001')).toEqual({ code: '12345678', outcome: 'undelivered' });
    expect(shop.testNumbers.get('+33612000002')).toEqual({ code: null, outcome: 'delivered' });
    expect(set.byDigest.get(sha256Hex('shop-secret-0123456789'))).toBe('shop');
    expect(set.byDigest.has(sha256Hex('old-secret-0123456789'))).toBe(false);
    expect(set.byDigest.get(sha256Hex('legacy-secret-012345'))).toBe('legacy');
  });

  it('names every problem at once, never echoing a secret', () => {
    const problems = problemsOf({
      keys: {
        a: { secret: 'tooshort', sender: 'x', codeLength: 12, colour: 'red' },
        b: { secretSha256: 'zz', webhook: { url: 'http://10.0.0.1/h', secrets: ['nope'] } },
        c: { secret: 'c-secret-0123456789', testNumbers: { '0612': { code: '123', outcome: 'lost' } } },
        d: { secret: 'd-secret-0123456789', allowedCountries: [] },
        e: { secret: 'e-secret-0123456789', allowedCountries: ['FR', 'UK'] },
        f: { secret: 'my secret key 0123456789' },
      },
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'TENANTS_FILE key a: unknown setting "colour"',
        'TENANTS_FILE key a: secret must be at least 16 printable characters without spaces',
        // regression: a secret with a space loaded, and no Bearer header could ever carry it
        'TENANTS_FILE key f: secret must be at least 16 printable characters without spaces',
        'TENANTS_FILE key a: codeLength must be a whole number from 6 to 10',
        expect.stringMatching(/^TENANTS_FILE key a: sender must be/),
        'TENANTS_FILE key b: secretSha256 must be 64 hex digits',
        expect.stringMatching(/^TENANTS_FILE key b: webhook url points at a loopback or private address/),
        'TENANTS_FILE key b: webhook secret 1 must be whsec_ followed by base64 of 24 bytes or more',
        'TENANTS_FILE key c: test number 0612 is not E.164',
        // regression: an empty list allowed every country
        expect.stringMatching(
          /^TENANTS_FILE key d: allowedCountries must be a list of ISO 3166 alpha-2 codes of countries with numbers, at least one/,
        ),
        // regression: a code no number has (UK for GB) passed, and refused every number of that country
        expect.stringMatching(
          /^TENANTS_FILE key e: allowedCountries must be a list of ISO 3166 alpha-2 codes of countries with numbers, at least one/,
        ),
        expect.stringMatching(/^TENANTS_FILE key c: test number 0612 outcome must be one of/),
        expect.stringMatching(/^TENANTS_FILE key c: test number 0612 code must be 6 to 10 digits/),
      ]),
    );
    expect(problems.join('\n')).not.toContain('tooshort');
  });

  it('refuses two keys with one secret, and a document without keys', () => {
    expect(
      problemsOf({ keys: { a: { secret: 'same-secret-0123456789' }, b: { secret: 'same-secret-0123456789' } } }),
    ).toEqual(['TENANTS_FILE keys a and b share a secret']);
    expect(problemsOf({ tenants: [] })).toEqual([expect.stringMatching(/must hold `keys:`/)]);
  });
});
