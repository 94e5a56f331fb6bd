import { isIP } from 'node:net';
import { isSupportedCountry } from 'libphonenumber-js/max';
import { EnvReader } from './env-reader.js';
import { ConfigError } from './errors.js';
import { type GuardsConfig, readGuardsConfig } from './guards.config.js';
import { type MessageConfig, readMessageConfig } from './messages.config.js';
import { type RedisConfig, readRedisConfig } from './redis.config.js';
import { CODE_LENGTHS } from './secrets.js';
import { readStatusWebhookConfig, type StatusWebhookConfig } from './status-webhooks.config.js';
import { isProviderId, type ProviderId } from './statuses.js';

/** An API key's secret: sent as `Authorization: Bearer <secret>`, so printable ASCII without spaces, 16 or more. */
export const API_SECRET = /^[\x21-\x7E]{16,}$/;

/** What Octopush takes as a sender: 3 to 11 letters or digits, no space, accent or punctuation (its code 106). */
export const OCTOPUSH_SENDER_PATTERN = /^[A-Za-z0-9]{3,11}$/;

/** OCTOPUSH_SENDER: one Octopush refuses would fail every send through it (taken as misconfigured, skipped). */
function readOctopushSender(r: EnvReader): string {
  const sender = r.str('OCTOPUSH_SENDER') ?? 'OTP';
  if (!OCTOPUSH_SENDER_PATTERN.test(sender)) {
    r.problems.push(`OCTOPUSH_SENDER must be 3 to 11 letters or digits, without spaces (got "${sender}")`);
  }
  return sender;
}

/** The log levels LOG_LEVEL may name (pino's). */
const LOG_LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Which process is loading: each requires its own variables. */
export type AppName = 'api' | 'worker' | 'webhooks' | 'dashboard' | 'simulator';

export interface ApiKey {
  readonly name: string;
  readonly secret: string;
}

export interface TwilioConfig {
  readonly accountSid: string;
  readonly authToken: string;
  readonly from: string | null;
  readonly messagingServiceSid: string | null;
  readonly apiBaseUrl: string;
}

export interface OctopushConfig {
  readonly apiKey: string;
  readonly apiLogin: string;
  readonly sender: string;
  readonly apiBaseUrl: string;
}

/** The gateway's configuration, parsed once and frozen. */
export interface Config {
  readonly env: 'development' | 'production' | 'test';
  readonly logLevel: string;
  /** Human-readable logs (pino-pretty) instead of JSON lines; development only. */
  readonly logPretty: boolean;
  readonly host: string;
  /**
   * Which proxies' X-Forwarded-For the HTTP processes believe (TRUST_PROXY): false, a hop count, or proxy addresses
   * and CIDRs. Never "every hop": the leftmost entry is the caller's to choose.
   */
  readonly trustProxy: TrustProxy;
  /** Where Redis is (one server, a cluster or a Sentinel set) and the prefix of every key the gateway writes. */
  readonly redis: RedisConfig;
  /** REDIS_ALLOW_NO_AOF: run in production on a Redis without AOF (accepted OTPs may be lost on a restart). */
  readonly redisAllowNoAof: boolean;
  /** METRICS_TOKEN: when set, /metrics of every process asks for `Authorization: Bearer <token>`. */
  readonly metricsToken: string | null;
  /** The send queues (see SEND_QUEUE_SHARDS) and how long finished jobs are kept. */
  readonly queues: {
    readonly sendShards: number;
    /** Completed jobs kept per queue (a count: memory stays flat however many OTPs go out). */
    readonly keepCompleted: number;
    /** How long failed jobs stay visible in the dashboard. */
    readonly keepFailedSeconds: number;
  };
  readonly otpSecret: string;
  readonly api: {
    readonly port: number;
    readonly keys: readonly ApiKey[];
    /** TENANTS_FILE: settings per API key (YAML or JSON), reloaded on SIGHUP; see tenants.ts. */
    readonly tenantsFile: string | null;
    /** TEST_NUMBERS_ENABLED: the keys' test numbers are honoured (default true); false sends them like any number. */
    readonly testNumbersEnabled: boolean;
  };
  readonly otp: {
    readonly ttlSeconds: number;
    /** How long an OTP's record stays readable after it ends (status polling, audits). */
    readonly recordRetentionSeconds: number;
    readonly codeLength: number;
    readonly maxAttempts: number;
    /** OTP_ALLOWED_COUNTRIES: ISO codes; empty when every country is allowed (`*`, or unset outside production). */
    readonly allowedCountries: ReadonlySet<string>;
    /** OTP_ALLOWED_COUNTRIES=* written out: every country allowed on purpose (the API warns at start). */
    readonly allowAllCountries: boolean;
    /** OTP_ALLOW_UNKNOWN_NUMBER_TYPE: a valid number whose line type libphonenumber cannot tell is let through. */
    readonly allowUnknownNumberType: boolean;
    readonly resendCooldownSeconds: number;
    readonly maxSendsPerNumber: number;
    readonly sendWindowSeconds: number;
    readonly numberMaxFailures: number;
    readonly numberLockSeconds: number;
    readonly keyRequestsPerMinute: number;
    readonly ipRequestsPerMinute: number;
  };
  /** The abuse guards (GUARD_*): velocity per range and country, conversion watch, daily budgets. */
  readonly guards: GuardsConfig;
  readonly providers: {
    /** SMS_PROVIDERS: the providers configured, the first preferred. */
    readonly order: readonly ProviderId[];
    /** SMS_ROUTES: provider order per ISO country of the destination (failover, circuits stay within it). */
    readonly routes: ReadonlyMap<string, readonly ProviderId[]>;
    /** The order for countries SMS_ROUTES does not list: its `*` entry, else SMS_PROVIDERS. */
    readonly defaultRoute: readonly ProviderId[];
    /** SMS_PRICES: price of one SMS by `<provider>:<ISO country>` (or `<provider>:*`), in `priceCurrency`. */
    readonly prices: ReadonlyMap<string, number>;
    /** SMS_PRICE_CURRENCY (ISO 4217, default EUR). */
    readonly priceCurrency: string;
    readonly twilio: TwilioConfig | null;
    readonly octopush: OctopushConfig | null;
    readonly timeoutMs: number;
    /** Messages per second per provider; 0 means unlimited. */
    readonly ratePerSecond: Readonly<Record<ProviderId, number>>;
  };
  readonly worker: {
    readonly concurrency: number;
    readonly metricsPort: number | null;
    readonly shutdownTimeoutMs: number;
    /** How long a job's lock lasts: a worker killed mid-job has its jobs taken over after about this long. */
    readonly lockMs: number;
    readonly circuitFailureThreshold: number;
    readonly circuitCooldownSeconds: number;
    readonly deliveryTimeoutSeconds: number;
    /** DELIVERY_RESEND_AFTER_SENT: resend a message reported sent whose final receipt never came (default true). */
    readonly deliveryResendAfterSent: boolean;
    /**
     * COST_CHECK_DELAY_SECONDS: when a provider tells a message's cost only after the send (Twilio's price), how
     * long after it the worker first asks; 0: never (the price table's stands). COST_CHECK_ATTEMPTS: how many times
     * it asks (BullMQ's exponential backoff: the next waits 1, 2, 4... times the delay) before the price table's
     * stands for good.
     */
    readonly costCheckDelaySeconds: number;
    readonly costCheckAttempts: number;
  };
  readonly webhooks: {
    readonly port: number;
    readonly publicBaseUrl: string | null;
    readonly twilioAuthToken: string | null;
    /**
     * TWILIO_CALLBACK_NAMES_ATTEMPT (default false): Twilio's StatusCallback carries `?otp=<id>&attempt=<n>`, so the
     * worker indexes no Twilio message and a report is one step. Off, the StatusCallback is the plain
     * `${PUBLIC_WEBHOOK_BASE_URL}/webhooks/twilio/status` of the outer contract, and any callback signed against it
     * is applied; on, only callbacks to the URL each message named are.
     */
    readonly twilioCallbackNamesAttempt: boolean;
    /** OCTOPUSH_WEBHOOK_TOKEN, then OCTOPUSH_WEBHOOK_TOKEN_PREVIOUS while a rotation is under way. */
    readonly octopushTokens: readonly string[];
    /** Callback requests per minute per client address, across the callbacks processes. */
    readonly ipRequestsPerMinute: number;
  };
  /** SMS brand, Android app hash and templates per locale (SMS_BRAND, SMS_ANDROID_APP_HASH, SMS_TEMPLATE_*). */
  readonly messages: MessageConfig;
  /** Status webhooks to the backend (STATUS_WEBHOOK_URL, STATUS_WEBHOOK_SECRET, WEBHOOK_*). */
  readonly statusWebhooks: StatusWebhookConfig;
  readonly dashboard: {
    readonly port: number;
    readonly user: string | null;
    readonly password: string | null;
    /** Board actions that delete or stop work (obliterate, clean, empty, pause, ...) allowed; off by default. */
    readonly allowDestructive: boolean;
    /** Failed logins per client address per 15 minutes before its logins are refused without a check. */
    readonly loginMaxFailures: number;
  };
}

const DEFAULT_HOST = '127.0.0.1';

/** Fastify's `trustProxy`, restricted to what cannot be spoofed: off, a hop count, or proxy addresses/CIDRs. */
export type TrustProxy = false | number | readonly string[];

/**
 * TRUST_PROXY: `false`/`0` (default), a hop count (`1`: one reverse proxy in front), or a comma-separated list of
 * proxy addresses or CIDRs. `true` is refused: Fastify would trust every hop and take the leftmost
 * X-Forwarded-For entry, which the caller writes, as the client address.
 */
/**
 * Config.trustProxy as Fastify's `trustProxy` option. A hop count becomes a function: Fastify 5 reads a plain
 * number as "trust nothing" (a hop count cannot tell a proxy from a direct caller), while TRUST_PROXY=1 means
 * "the peer is our proxy": its X-Forwarded-For entry, the rightmost, is the client. Where callers can reach the
 * process without the proxy, list the proxies' CIDRs instead.
 */
export function fastifyTrustProxy(
  c: Pick<Config, 'trustProxy'>,
): false | string[] | ((addr: string, i: number) => boolean) {
  const tp = c.trustProxy;
  if (typeof tp === 'number') return tp === 0 ? false : (_addr: string, i: number) => i < tp;
  return tp === false ? false : [...tp];
}

function readTrustProxy(r: EnvReader): TrustProxy {
  const raw = r.str('TRUST_PROXY');
  if (raw === null || ['false', '0', 'no', 'off'].includes(raw.toLowerCase())) return false;
  if (['true', 'yes', 'on'].includes(raw.toLowerCase())) {
    r.problems.push(
      'TRUST_PROXY=true would trust every hop (the caller then picks its own address): set the number of proxies in front (e.g. 1) or their addresses/CIDRs',
    );
    return false;
  }
  if (/^\d+$/.test(raw)) {
    const hops = Number(raw);
    if (hops > 10) r.problems.push(`TRUST_PROXY must be a hop count from 0 to 10 or proxy CIDRs (got "${raw}")`);
    return hops > 10 ? false : hops;
  }
  const cidrs = raw
    .split(',')
    .map((c) => c.trim())
    .filter(Boolean);
  for (const c of cidrs) {
    const [addr = '', bits, extra] = c.split('/');
    const family = isIP(addr);
    const max = family === 6 ? 128 : 32;
    if (!family || extra !== undefined || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max))) {
      r.problems.push(`TRUST_PROXY entry "${c}" is not an IP address or CIDR (or a hop count)`);
      return false;
    }
  }
  return Object.freeze(cidrs);
}

/**
 * Parses the environment into a frozen Config. Throws ConfigError naming every bad or missing variable
 * that `app` needs.
 */
export function loadConfig(env: NodeJS.ProcessEnv, app: AppName): Config {
  const r = new EnvReader(env);
  const nodeEnv = r.str('NODE_ENV') ?? 'development';
  if (!['development', 'production', 'test'].includes(nodeEnv)) {
    r.problems.push(`NODE_ENV must be development, production or test (got "${nodeEnv}")`);
  }
  const needs = (...apps: AppName[]) => apps.includes(app);

  const redis = readRedisConfig(r);

  let otpSecret = r.str('OTP_SECRET') ?? '';
  if (needs('api', 'worker')) {
    if (!otpSecret) r.problems.push('OTP_SECRET is required (at least 32 characters of random data)');
    else if (otpSecret.length < 32 || new Set(otpSecret).size < 10) {
      r.problems.push('OTP_SECRET must hold at least 32 bytes of entropy (32+ random characters)');
      otpSecret = '';
    }
  }

  const keys: ApiKey[] = [];
  const rawKeys = r.str('API_KEYS');
  if (needs('api')) {
    if (!rawKeys && !r.str('TENANTS_FILE')) {
      r.problems.push('API_KEYS is required (comma-separated name:secret pairs), unless TENANTS_FILE lists the keys');
    }
    for (const [n, pair] of (rawKeys ?? '').split(',').entries()) {
      if (!pair.trim()) continue;
      const i = pair.indexOf(':');
      const name = i > 0 ? pair.slice(0, i).trim() : '';
      const secret = pair.slice(i + 1).trim();
      // Entries are named by position: their text may be a secret. The secret travels as a Bearer token: printable
      // ASCII without spaces (a secret with one loaded, and could never authenticate).
      if (i <= 0 || !/^[A-Za-z0-9_.-]{1,64}$/.test(name) || !API_SECRET.test(secret)) {
        r.problems.push(
          `API_KEYS entry ${n + 1} must be name:secret, the name of letters, digits, _.- and the secret of 16+ printable characters without spaces`,
        );
      } else if (keys.some((k) => k.name === name || k.secret === secret)) {
        r.problems.push(`API_KEYS entry ${n + 1} repeats a name or a secret`);
      } else keys.push({ name, secret });
    }
  }

  const allowed = new Set<string>();
  const rawAllowed = r.str('OTP_ALLOWED_COUNTRIES');
  const allowAll = rawAllowed?.trim() === '*';
  if (needs('api') && nodeEnv === 'production' && !rawAllowed) {
    r.problems.push(
      'OTP_ALLOWED_COUNTRIES is required in production: the ISO codes of the countries codes may go to (e.g. FR,BE), or * written out to allow every country',
    );
  }
  for (const c of allowAll ? [] : (rawAllowed ?? '').split(',')) {
    const code = c.trim().toUpperCase();
    if (!code) continue;
    // a code no number has (UK for GB) would refuse that country's every send, 403 country_not_allowed
    if (!/^[A-Z]{2}$/.test(code) || !isSupportedCountry(code)) {
      r.problems.push(`OTP_ALLOWED_COUNTRIES entry "${c}" is not an ISO 3166 alpha-2 code of a country with numbers`);
    } else allowed.add(code);
  }
  // set but naming no country (",", spaces): it would allow every country, as if unset
  if (rawAllowed != null && !allowAll && allowed.size === 0 && rawAllowed.trim() !== '') {
    r.problems.push(
      'OTP_ALLOWED_COUNTRIES names no country: list ISO codes (e.g. FR,BE), or write * to allow every one',
    );
  }

  const order: ProviderId[] = [];
  for (const p of (r.str('SMS_PROVIDERS') ?? 'twilio,octopush').split(',')) {
    const id = p.trim().toLowerCase();
    if (!id) continue;
    if (!isProviderId(id)) r.problems.push(`SMS_PROVIDERS entry "${p}" is not a provider (twilio, octopush)`);
    else if (!order.includes(id)) order.push(id);
  }

  const { routes, defaultRoute } = readRoutes(r, order);

  let twilio: TwilioConfig | null = null;
  let octopush: OctopushConfig | null = null;
  if (needs('worker')) {
    if (order.length === 0) r.problems.push('SMS_PROVIDERS must name at least one provider');
    if (order.includes('twilio')) {
      const from = r.str('TWILIO_FROM');
      const mss = r.str('TWILIO_MESSAGING_SERVICE_SID');
      if (!from && !mss)
        r.problems.push('TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID is required (twilio is in SMS_PROVIDERS)');
      twilio = {
        accountSid: r.required('TWILIO_ACCOUNT_SID', 'twilio is in SMS_PROVIDERS'),
        authToken: r.required('TWILIO_AUTH_TOKEN', 'twilio is in SMS_PROVIDERS'),
        from,
        messagingServiceSid: mss,
        apiBaseUrl: r.url('TWILIO_API_BASE_URL', 'https://api.twilio.com') ?? 'https://api.twilio.com',
      };
    }
    if (order.includes('octopush')) {
      octopush = {
        apiKey: r.required('OCTOPUSH_API_KEY', 'octopush is in SMS_PROVIDERS'),
        apiLogin: r.required('OCTOPUSH_API_LOGIN', 'octopush is in SMS_PROVIDERS'),
        sender: readOctopushSender(r),
        apiBaseUrl:
          r.url('OCTOPUSH_API_BASE_URL', 'https://api.octopush.com/v1/public') ?? 'https://api.octopush.com/v1/public',
      };
    }
  }

  const twilioToken = r.str('TWILIO_AUTH_TOKEN');
  const publicBaseUrl = r.url('PUBLIC_WEBHOOK_BASE_URL', null);
  const octopushToken = r.str('OCTOPUSH_WEBHOOK_TOKEN');
  const octopushPrevious = r.str('OCTOPUSH_WEBHOOK_TOKEN_PREVIOUS');
  if (needs('webhooks')) {
    if (octopushPrevious !== null && octopushToken === null) {
      r.problems.push('OCTOPUSH_WEBHOOK_TOKEN_PREVIOUS needs OCTOPUSH_WEBHOOK_TOKEN (the new token)');
    }
    if (octopushPrevious !== null && octopushPrevious.length < 16) {
      r.problems.push('OCTOPUSH_WEBHOOK_TOKEN_PREVIOUS must be at least 16 characters');
    }
    if (twilioToken && !publicBaseUrl) {
      r.problems.push('PUBLIC_WEBHOOK_BASE_URL is required to check Twilio signatures (TWILIO_AUTH_TOKEN is set)');
    }
    if (octopushToken !== null && octopushToken.length < 16) {
      r.problems.push('OCTOPUSH_WEBHOOK_TOKEN must be at least 16 characters');
    }
  }

  // In production the provider credentials and the callbacks' signatures travel over these URLs: TLS only,
  // unless ALLOW_INSECURE_HTTP says otherwise (a simulator, a proxy on the same host).
  const allowInsecureHttp = r.bool('ALLOW_INSECURE_HTTP', false);
  if (nodeEnv === 'production' && !allowInsecureHttp) {
    const plain: [string, string | null | undefined][] = [
      ['PUBLIC_WEBHOOK_BASE_URL', publicBaseUrl],
      ['TWILIO_API_BASE_URL', twilio?.apiBaseUrl],
      ['OCTOPUSH_API_BASE_URL', octopush?.apiBaseUrl],
    ];
    for (const [name, url] of plain) {
      if (url?.startsWith('http://')) {
        r.problems.push(
          `${name} must be https:// in production (or set ALLOW_INSECURE_HTTP=true for a simulator or a local proxy)`,
        );
      }
    }
  }

  const dashUser = r.str('DASHBOARD_USER');
  const dashPassword = r.str('DASHBOARD_PASSWORD');
  if (needs('dashboard')) {
    if (!dashUser) r.problems.push('DASHBOARD_USER is required (the dashboard never runs without credentials)');
    if (!dashPassword) r.problems.push('DASHBOARD_PASSWORD is required (the dashboard never runs without credentials)');
    else if (dashPassword.length < 12) r.problems.push('DASHBOARD_PASSWORD must be at least 12 characters');
  }

  const metricsPort = r.int('WORKER_METRICS_PORT', 0, 0, 65535);
  const logLevel = r.str('LOG_LEVEL') ?? (nodeEnv === 'test' ? 'warn' : 'info');
  // pino's levels: another word made the logger throw at start, after this check, without naming the variable
  if (!LOG_LEVELS.includes(logLevel)) {
    r.problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);
  }

  const config: Config = {
    env: nodeEnv as Config['env'],
    logLevel,
    logPretty: nodeEnv === 'development' && r.bool('LOG_PRETTY', false),
    host: r.str('HOST') ?? DEFAULT_HOST,
    trustProxy: readTrustProxy(r),
    redis,
    redisAllowNoAof: r.bool('REDIS_ALLOW_NO_AOF', false),
    metricsToken: readMetricsToken(r),
    queues: {
      sendShards: r.int('SEND_QUEUE_SHARDS', 1, 1, 256),
      keepCompleted: r.int('JOBS_KEEP_COMPLETED', 100, 0, 1_000_000),
      keepFailedSeconds: r.int('JOBS_KEEP_FAILED_SECONDS', 7 * 86400, 60, 90 * 86400),
    },
    otpSecret,
    api: {
      port: r.int('API_PORT', 3000, 0, 65535),
      keys: Object.freeze(keys),
      tenantsFile: r.str('TENANTS_FILE'),
      testNumbersEnabled: r.bool('TEST_NUMBERS_ENABLED', true),
    },
    otp: {
      ttlSeconds: r.int('OTP_TTL_SECONDS', 600, 30, 600),
      recordRetentionSeconds: r.int('OTP_RECORD_RETENTION_SECONDS', 86400, 60, 30 * 86400),
      codeLength: r.int('OTP_CODE_LENGTH', 6, CODE_LENGTHS.min, CODE_LENGTHS.max),
      maxAttempts: r.int('OTP_MAX_ATTEMPTS', 5, 1, 20),
      allowedCountries: allowed,
      allowAllCountries: allowAll,
      allowUnknownNumberType: r.bool('OTP_ALLOW_UNKNOWN_NUMBER_TYPE', false),
      resendCooldownSeconds: r.int('OTP_RESEND_COOLDOWN_SECONDS', 30, 0, 3600),
      maxSendsPerNumber: r.int('OTP_MAX_SENDS_PER_NUMBER', 5, 1, 1000),
      sendWindowSeconds: r.int('OTP_SEND_WINDOW_SECONDS', 3600, 60, 86400),
      numberMaxFailures: r.int('OTP_NUMBER_MAX_FAILURES', 10, 1, 100),
      numberLockSeconds: r.int('OTP_NUMBER_LOCK_SECONDS', 3600, 60, 86400),
      keyRequestsPerMinute: r.int('RATE_LIMIT_PER_KEY_PER_MINUTE', 60000, 1, 10_000_000),
      ipRequestsPerMinute: r.int('RATE_LIMIT_PER_IP_PER_MINUTE', 60000, 1, 10_000_000),
    },
    // GUARD_DAILY_*_PER_KEY names are checked against API_KEYS; with TENANTS_FILE a key may be named in the file
    // only (read later), so the names are taken as written (it refused a key of the file's at start)
    guards: readGuardsConfig(r, r.str('TENANTS_FILE') ? [] : keys.map((k) => k.name)),
    providers: {
      order: Object.freeze(order),
      routes,
      defaultRoute,
      prices: readPrices(r),
      priceCurrency: readCurrency(r),
      twilio,
      octopush,
      timeoutMs: r.int('PROVIDER_TIMEOUT_MS', 5000, 100, 30000),
      ratePerSecond: {
        twilio: r.int('TWILIO_MAX_PER_SECOND', 0, 0, 100000),
        octopush: r.int('OCTOPUSH_MAX_PER_SECOND', 0, 0, 100000),
      },
    },
    worker: {
      concurrency: r.int('WORKER_CONCURRENCY', 50, 1, 1000),
      metricsPort: metricsPort === 0 ? null : metricsPort,
      shutdownTimeoutMs: r.int('SHUTDOWN_TIMEOUT_MS', 10000, 0, 120000),
      lockMs: r.int('WORKER_LOCK_MS', 30000, 1000, 600000),
      circuitFailureThreshold: r.int('CIRCUIT_FAILURE_THRESHOLD', 5, 1, 1000),
      circuitCooldownSeconds: r.int('CIRCUIT_COOLDOWN_SECONDS', 30, 1, 3600),
      deliveryTimeoutSeconds: r.int('DELIVERY_TIMEOUT_SECONDS', 120, 5, 3600),
      deliveryResendAfterSent: r.bool('DELIVERY_RESEND_AFTER_SENT', true),
      costCheckDelaySeconds: r.int('COST_CHECK_DELAY_SECONDS', 60, 0, 86400),
      costCheckAttempts: r.int('COST_CHECK_ATTEMPTS', 6, 1, 20),
    },
    webhooks: {
      port: r.int('WEBHOOKS_PORT', 3001, 0, 65535),
      publicBaseUrl,
      twilioAuthToken: twilioToken,
      twilioCallbackNamesAttempt: r.bool('TWILIO_CALLBACK_NAMES_ATTEMPT', false),
      octopushTokens: Object.freeze([octopushToken, octopushPrevious].filter((t): t is string => t !== null)),
      ipRequestsPerMinute: r.int('WEBHOOKS_RATE_LIMIT_PER_IP_PER_MINUTE', 6000, 1, 10_000_000),
    },
    messages: readMessageConfig(r, env),
    statusWebhooks: readStatusWebhookConfig(r, { production: nodeEnv === 'production', allowInsecureHttp }),
    dashboard: {
      port: r.int('DASHBOARD_PORT', 3002, 0, 65535),
      user: dashUser,
      password: dashPassword,
      allowDestructive: r.bool('DASHBOARD_ALLOW_DESTRUCTIVE_ACTIONS', false),
      loginMaxFailures: r.int('DASHBOARD_LOGIN_MAX_FAILURES', 10, 1, 10_000),
    },
  };
  if (needs('api') && config.guards.enabled) r.problems.push(...unpricedSpendBudgets(config.guards, config.providers));
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return deepFreeze(config);
}

const UNWEIGHED = 'each send is weighed at its SMS_PRICES price, and a send without one is not weighed';

/**
 * A spend budget weighs each send at its SMS_PRICES price (expectedPrice: the first provider of its route that has
 * a price) and lets an unpriced send through unweighed: a budget the price table cannot price would never refuse
 * anything, silently. The API refuses to start with one (the worker and the other apps do not weigh sends): a
 * country's budget when the price its sends are weighed at is missing or 0, a `*` or per-key budget when no
 * provider in SMS_PROVIDERS has a price above 0.
 */
function unpricedSpendBudgets(guards: Config['guards'], providers: Config['providers']): string[] {
  const out: string[] = [];
  for (const [country, amount] of guards.dailySpendPerCountry) {
    if (amount === 0) continue;
    if (country === '*' ? !anySpendPrice(providers) : expectedPrice(providers, country) === 0) {
      const why =
        country === '*'
          ? 'SMS_PRICES has no price above 0 for any provider in SMS_PROVIDERS'
          : `SMS_PRICES has no price above 0 for ${country} through the first provider of its route that has one`;
      out.push(`GUARD_DAILY_SPEND_PER_COUNTRY ${country}=${amount} would never apply: ${why}; ${UNWEIGHED}`);
    }
  }
  if ([...guards.dailySpendPerKey.values()].some((amount) => amount > 0) && !anySpendPrice(providers)) {
    out.push(
      `GUARD_DAILY_SPEND_PER_KEY would never apply: SMS_PRICES has no price above 0 for any provider in SMS_PROVIDERS; ${UNWEIGHED}`,
    );
  }
  return out;
}

/** The same rule for an API key's own spend budget (TENANTS_FILE `budgets.dailySpend`); the API checks it. */
export function tenantSpendProblems(
  tenant: { readonly name: string; readonly budgets: { readonly dailySpend: number | null } },
  config: Pick<Config, 'guards' | 'providers'>,
): string[] {
  if (!config.guards.enabled || !((tenant.budgets.dailySpend ?? 0) > 0)) return [];
  if (anySpendPrice(config.providers)) return [];
  return [
    `TENANTS_FILE key ${tenant.name}: budgets.dailySpend would never apply: SMS_PRICES has no price above 0 for any provider in SMS_PROVIDERS; ${UNWEIGHED}`,
  ];
}

/** Some provider in use (SMS_PROVIDERS) has a price above 0 in SMS_PRICES, for a country or `*`. */
function anySpendPrice(providers: Pick<Config['providers'], 'prices' | 'order'>): boolean {
  for (const [key, amount] of providers.prices) {
    if (amount > 0 && (providers.order as readonly string[]).includes(key.slice(0, key.indexOf(':')))) return true;
  }
  return false;
}

/**
 * SMS_ROUTES: `FR=octopush,twilio;BE=octopush;*=twilio,octopush`. Each provider must be in SMS_PROVIDERS (it
 * needs its credentials) and each country an ISO code libphonenumber knows: a typo would silently route nothing.
 */
function readRoutes(
  r: EnvReader,
  order: readonly ProviderId[],
): { routes: ReadonlyMap<string, readonly ProviderId[]>; defaultRoute: readonly ProviderId[] } {
  const routes = new Map<string, readonly ProviderId[]>();
  let defaultRoute: readonly ProviderId[] = Object.freeze([...order]);
  const seen = new Set<string>();
  for (const entry of (r.str('SMS_ROUTES') ?? '').split(';')) {
    if (!entry.trim()) continue;
    const [rawCc = '', list = '', extra] = entry.split('=');
    const cc = rawCc.trim().toUpperCase();
    if (extra !== undefined || !list.trim()) {
      r.problems.push(`SMS_ROUTES entry "${entry.trim()}" must be COUNTRY=provider,provider`);
      continue;
    }
    if (cc !== '*' && !(/^[A-Z]{2}$/.test(cc) && isSupportedCountry(cc))) {
      r.problems.push(`SMS_ROUTES country "${rawCc.trim()}" is not an ISO 3166 alpha-2 code of a known country`);
      continue;
    }
    const providers: ProviderId[] = [];
    for (const p of list.split(',')) {
      const id = p.trim().toLowerCase();
      if (!id) continue;
      if (!isProviderId(id))
        r.problems.push(`SMS_ROUTES provider "${p.trim()}" (${cc}) is not a provider (twilio, octopush)`);
      else if (!order.includes(id)) r.problems.push(`SMS_ROUTES provider "${id}" (${cc}) is not in SMS_PROVIDERS`);
      else if (!providers.includes(id)) providers.push(id);
    }
    if (seen.has(cc)) r.problems.push(`SMS_ROUTES names ${cc} twice`);
    seen.add(cc);
    if (cc === '*') defaultRoute = Object.freeze(providers);
    else routes.set(cc, Object.freeze(providers));
  }
  return { routes, defaultRoute };
}

/** SMS_PRICES: `twilio:FR=0.07,twilio:*=0.05,octopush:FR=0.045`: used when a provider's answer has no price. */
function readPrices(r: EnvReader): ReadonlyMap<string, number> {
  const prices = new Map<string, number>();
  for (const entry of (r.str('SMS_PRICES') ?? '').split(',')) {
    if (!entry.trim()) continue;
    const m = /^\s*([a-z]+):([A-Za-z]{2}|\*)\s*=\s*(\d+(?:\.\d+)?)\s*$/.exec(entry);
    if (!m || !isProviderId(m[1] ?? '') || (m[2] !== '*' && !isSupportedCountry((m[2] ?? '').toUpperCase()))) {
      r.problems.push(`SMS_PRICES entry "${entry.trim()}" must be provider:COUNTRY=price (or provider:*=price)`);
    } else prices.set(`${m[1]}:${(m[2] ?? '').toUpperCase()}`, Number(m[3]));
  }
  return prices;
}

function readCurrency(r: EnvReader): string {
  const c = (r.str('SMS_PRICE_CURRENCY') ?? 'EUR').toUpperCase();
  if (!/^[A-Z]{3}$/.test(c)) r.problems.push(`SMS_PRICE_CURRENCY must be an ISO 4217 code (got "${c}")`);
  return c;
}

/**
 * What one SMS to `country` is expected to cost before it is sent, for the spend budgets: the price table's price
 * through the first provider of the route the worker will take that has one; 0 when the table has none (such a
 * send is not weighed against a spend budget). The route, in the worker's order (the plan script): the API key's
 * own for the country, the key's own `*` (`keyRoutes`, TENANTS_FILE), SMS_ROUTES for the country, SMS_PROVIDERS.
 */
export function expectedPrice(
  c: Pick<Config['providers'], 'prices' | 'priceCurrency' | 'routes' | 'defaultRoute'>,
  country: string,
  keyRoutes?: ReadonlyMap<string, readonly string[]>,
): number {
  const route = keyRoutes?.get(country) ?? keyRoutes?.get('*') ?? c.routes.get(country) ?? c.defaultRoute;
  for (const p of route) {
    const price = tablePrice(c, p, country);
    if (price) return price.amount;
  }
  return 0;
}

/** The price table's price of one SMS through `provider` to `country`, or null when it has none. */
export function tablePrice(
  c: Pick<Config['providers'], 'prices' | 'priceCurrency'>,
  provider: string,
  country: string,
): { amount: number; currency: string } | null {
  const amount = c.prices.get(`${provider}:${country}`) ?? c.prices.get(`${provider}:*`);
  return amount === undefined ? null : { amount, currency: c.priceCurrency };
}

function readMetricsToken(r: EnvReader): string | null {
  const token = r.str('METRICS_TOKEN');
  if (token !== null && token.length < 16) r.problems.push('METRICS_TOKEN must be at least 16 characters');
  return token;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !(o instanceof Set)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/**
 * The fields of an HTTP app's one `request completed` line (the API's and the callbacks app's): the request (each
 * app's `req` serializer says what of it is logged), the status, and the time taken in ms to a tenth.
 */
export function requestLine<R>(
  req: R,
  reply: { statusCode: number; elapsedTime: number },
): { req: R; res: { statusCode: number }; responseTime: number } {
  return { req, res: { statusCode: reply.statusCode }, responseTime: Math.round(reply.elapsedTime * 10) / 10 };
}

/** pino options for the log format: JSON lines, or pino-pretty when `logPretty` (development only). */
export function logFormat(config: Pick<Config, 'logPretty'>): { transport?: { target: string; options: object } } {
  return config.logPretty
    ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } }
    : {};
}
