import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { ConfigError } from './errors.js';

const SECRET = 'unit-test-secret-0123456789abcdefghijklmnop';
const API_ENV = { OTP_SECRET: SECRET, API_KEYS: 'shop:shop-secret-0123456789' };
/** What the worker needs besides, with Twilio as its one provider. */
const TWILIO_ENV = {
  ...API_ENV,
  SMS_PROVIDERS: 'twilio',
  TWILIO_ACCOUNT_SID: 'AC1',
  TWILIO_AUTH_TOKEN: 'token',
  TWILIO_FROM: '+15005550006',
};
/** The same, with Octopush as its one provider. */
const OCTOPUSH_ENV = {
  ...API_ENV,
  SMS_PROVIDERS: 'octopush',
  OCTOPUSH_API_KEY: 'k',
  OCTOPUSH_API_LOGIN: 'me@example.com',
};

function problems(env: NodeJS.ProcessEnv, app: Parameters<typeof loadConfig>[1] = 'api'): readonly string[] {
  try {
    loadConfig(env, app);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('loadConfig', () => {
  it('parses a minimal API configuration with the documented defaults, frozen', () => {
    const c = loadConfig(API_ENV, 'api');
    expect(c.api.keys).toEqual([{ name: 'shop', secret: 'shop-secret-0123456789' }]);
    expect(c.redis).toEqual({
      keyPrefix: 'otp',
      waitReplicas: 0,
      connection: { mode: 'single', url: 'redis://127.0.0.1:6379' },
    });
    expect(c.queues.sendShards).toBe(1);
    expect(c.otp.recordRetentionSeconds).toBe(86400);
    expect(c.host).toBe('127.0.0.1');
    expect(c.api.port).toBe(3000);
    expect(c.otp).toMatchObject({ ttlSeconds: 600, codeLength: 6, maxAttempts: 5 });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.otp)).toBe(true);
    expect(() => {
      (c.otp as { ttlSeconds: number }).ttlSeconds = 5;
    }).toThrow();
  });

  it('reads the OTP settings and the allowed countries', () => {
    const c = loadConfig(
      {
        ...API_ENV,
        API_KEYS: 'a:aaaaaaaaaaaaaaaaaaaa, b:bbbbbbbbbbbbbbbbbbbb',
        OTP_TTL_SECONDS: '120',
        OTP_CODE_LENGTH: '8',
        OTP_MAX_ATTEMPTS: '3',
        OTP_ALLOWED_COUNTRIES: 'fr, be',
        OTP_RESEND_COOLDOWN_SECONDS: '0',
        RATE_LIMIT_PER_KEY_PER_MINUTE: '10',
      },
      'api',
    );
    expect(c.api.keys.map((k) => k.name)).toEqual(['a', 'b']);
    expect(c.otp).toMatchObject({ ttlSeconds: 120, codeLength: 8, maxAttempts: 3, resendCooldownSeconds: 0 });
    expect(c.otp.keyRequestsPerMinute).toBe(10);
    expect([...c.otp.allowedCountries]).toEqual(['FR', 'BE']);
  });

  it('requires OTP_ALLOWED_COUNTRIES for the API in production; * only when written out', () => {
    const prod = { ...API_ENV, NODE_ENV: 'production' };
    expect(problems(prod).join('\n')).toContain('OTP_ALLOWED_COUNTRIES is required in production');
    expect(problems(prod, 'worker').join('\n')).not.toContain('OTP_ALLOWED_COUNTRIES');
    const all = loadConfig({ ...prod, OTP_ALLOWED_COUNTRIES: '*' }, 'api');
    expect(all.otp.allowAllCountries).toBe(true);
    expect(all.otp.allowedCountries.size).toBe(0);
    const some = loadConfig({ ...prod, OTP_ALLOWED_COUNTRIES: 'FR' }, 'api');
    expect(some.otp).toMatchObject({ allowAllCountries: false, allowUnknownNumberType: false });
    expect(problems({ ...prod, OTP_ALLOWED_COUNTRIES: 'FR,*' }).join('\n')).toContain('"*"');
    // regression: a list naming no country passed as "set", and allowed every country
    expect(problems({ ...prod, OTP_ALLOWED_COUNTRIES: ', ,' }).join('\n')).toContain(
      'OTP_ALLOWED_COUNTRIES names no country',
    );
  });

  it('reads SMS_ROUTES and names an unknown provider or country', () => {
    const c = loadConfig({ ...API_ENV, SMS_ROUTES: 'fr=octopush,twilio; BE=octopush;*=octopush,twilio' }, 'api');
    expect(Object.fromEntries(c.providers.routes)).toEqual({ FR: ['octopush', 'twilio'], BE: ['octopush'] });
    expect(c.providers.defaultRoute).toEqual(['octopush', 'twilio']);
    expect(loadConfig(API_ENV, 'api').providers.defaultRoute).toEqual(['twilio', 'octopush']);
    const found = problems({ ...API_ENV, SMS_PROVIDERS: 'twilio', SMS_ROUTES: 'FR=smsbox;XX=twilio;BE=octopush;DE' });
    expect(found.join('\n')).toContain('"smsbox"');
    expect(found.join('\n')).toContain('"XX"');
    expect(found.join('\n')).toContain('"octopush" (BE) is not in SMS_PROVIDERS');
    expect(found.join('\n')).toContain('"DE"');
  });

  it('names every bad variable in one error', () => {
    const found = problems({
      OTP_SECRET: 'short',
      API_KEYS: 'nocolon,x:short',
      OTP_TTL_SECONDS: '601',
      OTP_CODE_LENGTH: '5',
      OTP_MAX_ATTEMPTS: 'many',
      OTP_ALLOWED_COUNTRIES: 'FRA',
      REDIS_URL: 'http://localhost:6379',
      API_PORT: '70000',
      NODE_ENV: 'staging',
    });
    for (const name of [
      'OTP_SECRET',
      'API_KEYS',
      'OTP_TTL_SECONDS',
      'OTP_CODE_LENGTH',
      'OTP_MAX_ATTEMPTS',
      'OTP_ALLOWED_COUNTRIES',
      'REDIS_URL',
      'API_PORT',
      'NODE_ENV',
    ]) {
      expect(
        found.some((p) => p.includes(name)),
        `${name} in ${JSON.stringify(found)}`,
      ).toBe(true);
    }
    try {
      loadConfig({ OTP_TTL_SECONDS: '601', OTP_CODE_LENGTH: '11' }, 'api');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      for (const name of ['OTP_SECRET', 'API_KEYS', 'OTP_TTL_SECONDS', 'OTP_CODE_LENGTH']) {
        expect((e as Error).message).toContain(name);
      }
    }
  });

  it('bounds the lifetime to 600 s and the code to 6..10 digits', () => {
    expect(problems({ ...API_ENV, OTP_TTL_SECONDS: '600', OTP_CODE_LENGTH: '10' })).toEqual([]);
    expect(problems({ ...API_ENV, OTP_CODE_LENGTH: '6' })).toEqual([]);
    expect(problems({ ...API_ENV, OTP_TTL_SECONDS: '601' })).toHaveLength(1);
    expect(problems({ ...API_ENV, OTP_TTL_SECONDS: '0' })).toHaveLength(1);
    expect(problems({ ...API_ENV, OTP_CODE_LENGTH: '5' })).toHaveLength(1);
    expect(problems({ ...API_ENV, OTP_CODE_LENGTH: '11' })).toHaveLength(1);
    expect(problems({ ...API_ENV, OTP_CODE_LENGTH: '6.5' })).toHaveLength(1);
  });

  it('refuses a low-entropy OTP_SECRET and duplicate API keys', () => {
    expect(problems({ ...API_ENV, OTP_SECRET: 'a'.repeat(64) }).join()).toContain('OTP_SECRET');
    expect(problems({ ...API_ENV, API_KEYS: 'a:aaaaaaaaaaaaaaaaaaaa,a:bbbbbbbbbbbbbbbbbbbb' }).join()).toContain(
      'API_KEYS',
    );
    expect(problems({ ...API_ENV, API_KEYS: 'a:aaaaaaaaaaaaaaaaaaaa,b:aaaaaaaaaaaaaaaaaaaa' }).join()).toContain(
      'API_KEYS',
    );
  });

  it('never echoes a secret in its message (a malformed API key entry, a Redis URL password)', () => {
    const msg = problems({
      ...API_ENV,
      API_KEYS: 'Sup3rS3cretBackendKey_9f8e7d6c,x:short',
      REDIS_URL: 'redis//:hunter2password@redis.internal:6379',
    }).join('\n');
    expect(msg).toContain('API_KEYS entry 1');
    expect(msg).toContain('API_KEYS entry 2');
    expect(msg).toContain('REDIS_URL');
    expect(msg).not.toMatch(/Sup3rS3cret|short|hunter2/);
  });

  it('asks each process only for its own variables', () => {
    expect(problems({}, 'webhooks')).toEqual([]);
    expect(problems({}, 'api').join()).toMatch(/OTP_SECRET[\s\S]*API_KEYS|API_KEYS[\s\S]*OTP_SECRET/);
  });
});

describe('Redis connection modes', () => {
  it('reads a cluster, with credentials, TLS and a NAT map', () => {
    const c = loadConfig(
      {
        ...API_ENV,
        REDIS_CLUSTER_NODES: '10.0.0.1:6379, 10.0.0.2:6380',
        REDIS_PASSWORD: 'pw',
        REDIS_TLS: 'true',
        REDIS_NAT_MAP: '10.0.0.1:6379=127.0.0.1:7001',
        SEND_QUEUE_SHARDS: '6',
      },
      'api',
    );
    expect(c.redis.connection).toEqual({
      mode: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 6379 },
        { host: '10.0.0.2', port: 6380 },
      ],
      username: null,
      password: 'pw',
      tls: true,
      natMap: { '10.0.0.1:6379': { host: '127.0.0.1', port: 7001 } },
    });
    expect(c.queues.sendShards).toBe(6);
  });

  it('reads a Sentinel set and requires the primary name', () => {
    const c = loadConfig({ ...API_ENV, REDIS_SENTINELS: 's1:26379,s2:26379', REDIS_SENTINEL_NAME: 'main' }, 'api');
    expect(c.redis.connection).toMatchObject({
      mode: 'sentinel',
      name: 'main',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
    });
    expect(problems({ ...API_ENV, REDIS_SENTINELS: 's1:26379' })).toEqual([
      'REDIS_SENTINEL_NAME is required with REDIS_SENTINELS (the name of the monitored primary)',
    ]);
  });

  it('refuses two modes at once, and bad nodes, naming each variable', () => {
    expect(
      problems({ ...API_ENV, REDIS_URL: 'redis://x:6379', REDIS_CLUSTER_NODES: 'a:1', REDIS_KEY_PREFIX: '{bad}' }),
    ).toEqual([
      'REDIS_KEY_PREFIX must be 1 to 32 letters, digits, _ . or - (no braces: they are hash tags)',
      'set exactly one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS (got REDIS_URL and REDIS_CLUSTER_NODES)',
    ]);
    expect(problems({ ...API_ENV, REDIS_CLUSTER_NODES: 'nohost,x:99999' })).toEqual([
      'REDIS_CLUSTER_NODES entry "nohost" is not host:port',
      'REDIS_CLUSTER_NODES entry "x:99999" is not host:port',
      'REDIS_CLUSTER_NODES must list at least one host:port',
    ]);
  });

  it('reads TRUST_PROXY as a hop count or proxy CIDRs, and refuses true (it trusts every hop)', () => {
    expect(loadConfig(API_ENV, 'api').trustProxy).toBe(false);
    expect(loadConfig({ ...API_ENV, TRUST_PROXY: '1' }, 'api').trustProxy).toBe(1);
    expect(loadConfig({ ...API_ENV, TRUST_PROXY: '10.0.0.0/8, 192.0.2.1,fd00::/8' }, 'api').trustProxy).toEqual([
      '10.0.0.0/8',
      '192.0.2.1',
      'fd00::/8',
    ]);
    expect(problems({ ...API_ENV, TRUST_PROXY: 'true' })).toEqual([expect.stringContaining('TRUST_PROXY=true')]);
    expect(problems({ ...API_ENV, TRUST_PROXY: '10.0.0.0/40' })).toEqual([expect.stringContaining('TRUST_PROXY')]);
    expect(problems({ ...API_ENV, TRUST_PROXY: 'proxy.local' })).toEqual([expect.stringContaining('TRUST_PROXY')]);
  });

  it('regression: refuses an API key secret with a space (it loaded, and no Bearer header could carry it)', () => {
    expect(problems({ ...API_ENV, API_KEYS: 'shop:my secret key 0123456789' })).toEqual([
      'API_KEYS entry 1 must be name:secret, the name of letters, digits, _.- and the secret of 16+ printable characters without spaces',
    ]);
  });

  it('regression: refuses an OCTOPUSH_SENDER Octopush would refuse (every send through it failed, code 106)', () => {
    const env = OCTOPUSH_ENV;
    expect(problems({ ...env, OCTOPUSH_SENDER: 'My Shop' }, 'worker')).toEqual([
      'OCTOPUSH_SENDER must be 3 to 11 letters or digits, without spaces (got "My Shop")',
    ]);
    expect(problems({ ...env, OCTOPUSH_SENDER: '+33612345678' }, 'worker')).toHaveLength(1);
    expect(loadConfig({ ...env, OCTOPUSH_SENDER: 'ACME2026' }, 'worker').providers.octopush?.sender).toBe('ACME2026');
  });

  it('regression: refuses an OTP_ALLOWED_COUNTRIES code no number has, and a LOG_LEVEL pino does not know', () => {
    // UK (for GB) passed, and every British number was then refused 403 country_not_allowed
    expect(problems({ ...API_ENV, OTP_ALLOWED_COUNTRIES: 'FR,UK' })).toEqual([
      'OTP_ALLOWED_COUNTRIES entry "UK" is not an ISO 3166 alpha-2 code of a country with numbers',
    ]);
    expect(loadConfig({ ...API_ENV, OTP_ALLOWED_COUNTRIES: 'fr,GB' }, 'api').otp.allowedCountries).toEqual(
      new Set(['FR', 'GB']),
    );
    // pino threw at start (exit 1) without naming the variable
    expect(problems({ ...API_ENV, LOG_LEVEL: 'verbose' })).toEqual([
      'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "verbose")',
    ]);
    expect(loadConfig({ ...API_ENV, LOG_LEVEL: 'debug' }, 'api').logLevel).toBe('debug');
  });

  it('regression: refuses http:// provider and callback URLs in production unless ALLOW_INSECURE_HTTP', () => {
    const env = {
      ...TWILIO_ENV,
      NODE_ENV: 'production',
      TWILIO_API_BASE_URL: 'http://127.0.0.1:3003',
      PUBLIC_WEBHOOK_BASE_URL: 'http://otp.example.com',
    };
    expect(problems(env, 'worker')).toEqual([
      expect.stringContaining('PUBLIC_WEBHOOK_BASE_URL must be https://'),
      expect.stringContaining('TWILIO_API_BASE_URL must be https://'),
    ]);
    expect(problems({ ...env, ALLOW_INSECURE_HTTP: 'true' }, 'worker')).toEqual([]);
    expect(problems({ ...env, NODE_ENV: 'development' }, 'worker')).toEqual([]);
  });

  it('regression: refuses a provider or callback URL that is not http(s), and a REDIS_URL that is not redis(s)', () => {
    const env = TWILIO_ENV;
    // a rediss:// provider URL used to pass, and every send then failed at request time
    expect(problems({ ...env, TWILIO_API_BASE_URL: 'rediss://api.twilio.com' }, 'worker')).toEqual([
      'TWILIO_API_BASE_URL must be an http(s) URL (got "rediss://api.twilio.com")',
    ]);
    expect(problems({ ...env, PUBLIC_WEBHOOK_BASE_URL: 'ftp://otp.example.com' }, 'worker')).toEqual([
      'PUBLIC_WEBHOOK_BASE_URL must be an http(s) URL (got "ftp://otp.example.com")',
    ]);
    expect(problems({ ...env, REDIS_URL: 'https://user:secret@redis.example.com' }, 'worker')).toEqual([
      'REDIS_URL must be a redis:// or rediss:// URL (got "https://***@redis.example.com")',
    ]);
    expect(problems({ ...env, REDIS_URL: 'rediss://redis.example.com:6380' }, 'worker')).toEqual([]);
  });

  it('reads METRICS_TOKEN (16+ characters)', () => {
    expect(loadConfig(API_ENV, 'api').metricsToken).toBeNull();
    expect(loadConfig({ ...API_ENV, METRICS_TOKEN: 'metrics-token-0123456789' }, 'api').metricsToken).toBe(
      'metrics-token-0123456789',
    );
    expect(problems({ ...API_ENV, METRICS_TOKEN: 'short' })).toEqual([expect.stringContaining('METRICS_TOKEN')]);
  });
});

describe('TWILIO_CALLBACK_NAMES_ATTEMPT', () => {
  it("is off by default (the outer contract's plain StatusCallback), on when asked", () => {
    const env = { ...API_ENV, ...TWILIO_ENV, PUBLIC_WEBHOOK_BASE_URL: 'http://127.0.0.1:3001' };
    expect(loadConfig(env, 'worker').webhooks.twilioCallbackNamesAttempt).toBe(false);
    const on = loadConfig({ ...env, TWILIO_CALLBACK_NAMES_ATTEMPT: 'true' }, 'worker');
    expect(on.webhooks.twilioCallbackNamesAttempt).toBe(true);
  });
});
