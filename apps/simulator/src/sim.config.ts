import { parseFaultPatch } from './faults.js';
import {
  type FaultSettings,
  SIM_PROVIDERS,
  SIMULATOR_DEFAULTS,
  type SimProvider,
  type SimulatorInput,
} from './sim.options.js';

/** The simulator process's settings, from its environment. */
export interface SimulatorConfig {
  readonly port: number;
  readonly host: string;
  readonly logLevel: string;
  readonly simulator: SimulatorInput;
}

/** Invalid SIM_* variables, all named at once. */
export class SimulatorConfigError extends Error {
  override readonly name = 'SimulatorConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid simulator configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/** Per-provider fault variables: SIM_TWILIO_LATENCY_MS, SIM_OCTOPUSH_DOWN... */
const FAULT_VARS: Record<string, keyof FaultSettings> = {
  LATENCY_MS: 'latencyMs',
  ERROR_RATE: 'errorRate',
  RATE_LIMIT_RATE: 'rateLimitRate',
  RETRY_AFTER_SECONDS: 'retryAfterSeconds',
  TIMEOUT_RATE: 'timeoutRate',
  DOWN: 'down',
  UNDELIVERED_RATE: 'undeliveredRate',
  LOST_CALLBACK_RATE: 'lostCallbackRate',
  CALLBACK_DELAY_MS: 'callbackDelayMs',
};

/**
 * Reads SIMULATOR_PORT (3003), HOST (127.0.0.1), LOG_LEVEL (info), the credentials the fakes accept
 * (SIM_TWILIO_ACCOUNT_SID, SIM_TWILIO_AUTH_TOKEN, SIM_OCTOPUSH_API_KEY, SIM_OCTOPUSH_API_LOGIN; dev
 * defaults in SIMULATOR_DEFAULTS), SIM_OCTOPUSH_CALLBACK_URL, SIM_OCTOPUSH_DUPLICATE_REQUEST
 * (replay|reject), SIM_TIMEOUT_HANG_MS (30000), SIM_INBOX_LIMIT (10000), SIM_CALLBACK_DELAY_MS (500,
 * both providers) and the per-provider faults SIM_{TWILIO,OCTOPUSH}_{LATENCY_MS, ERROR_RATE,
 * RATE_LIMIT_RATE, RETRY_AFTER_SECONDS, TIMEOUT_RATE, DOWN, UNDELIVERED_RATE, LOST_CALLBACK_RATE,
 * CALLBACK_DELAY_MS}. Throws SimulatorConfigError naming every bad variable.
 */
export function loadSimulatorConfig(env: NodeJS.ProcessEnv): SimulatorConfig {
  const problems: string[] = [];
  const str = (name: string) => env[name]?.trim() || undefined;
  const int = (name: string, def: number, min: number, max: number) => {
    const raw = str(name);
    if (raw === undefined) return def;
    const n = Number(raw);
    if (Number.isInteger(n) && n >= min && n <= max) return n;
    problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}")`);
    return def;
  };

  const callbackUrl = str('SIM_OCTOPUSH_CALLBACK_URL') ?? null;
  if (callbackUrl !== null && !/^https?:\/\/[^\s/]+/.test(callbackUrl)) {
    problems.push(`SIM_OCTOPUSH_CALLBACK_URL must be an http(s) URL (got "${callbackUrl}")`);
  }
  // reject: what the real API does (code 120); replay answers the first request again
  const duplicate = str('SIM_OCTOPUSH_DUPLICATE_REQUEST') ?? 'reject';
  if (duplicate !== 'replay' && duplicate !== 'reject') {
    problems.push(`SIM_OCTOPUSH_DUPLICATE_REQUEST must be replay or reject (got "${duplicate}")`);
  }
  const defaultDelay = int('SIM_CALLBACK_DELAY_MS', 500, 0, 600_000);

  const faults: Partial<Record<SimProvider, Partial<FaultSettings>>> = {};
  for (const provider of SIM_PROVIDERS) {
    const raw: Record<string, unknown> = { callbackDelayMs: defaultDelay };
    for (const [suffix, key] of Object.entries(FAULT_VARS)) {
      const name = `SIM_${provider.toUpperCase()}_${suffix}`;
      const v = str(name);
      if (v === undefined) continue;
      raw[key] = key === 'down' ? parseBool(v) : Number(v);
      const parsed = parseFaultPatch(provider, { [key]: raw[key] });
      if (!parsed.ok) problems.push(`${name}: ${parsed.problems.join('; ')} (got "${v}")`);
    }
    const parsed = parseFaultPatch(provider, raw);
    if (parsed.ok) faults[provider] = parsed.patch;
  }

  const config: SimulatorConfig = {
    port: int('SIMULATOR_PORT', 3003, 0, 65535),
    host: str('HOST') ?? '127.0.0.1',
    logLevel: str('LOG_LEVEL') ?? 'info',
    simulator: {
      twilio: {
        accountSid: str('SIM_TWILIO_ACCOUNT_SID') ?? SIMULATOR_DEFAULTS.twilio.accountSid,
        authToken: str('SIM_TWILIO_AUTH_TOKEN') ?? SIMULATOR_DEFAULTS.twilio.authToken,
      },
      octopush: {
        apiKey: str('SIM_OCTOPUSH_API_KEY') ?? SIMULATOR_DEFAULTS.octopush.apiKey,
        apiLogin: str('SIM_OCTOPUSH_API_LOGIN') ?? SIMULATOR_DEFAULTS.octopush.apiLogin,
        callbackUrl,
        duplicateRequest: duplicate === 'reject' ? 'reject' : 'replay',
      },
      faults,
      timeoutHangMs: int('SIM_TIMEOUT_HANG_MS', 30_000, 100, 120_000),
      inboxLimit: int('SIM_INBOX_LIMIT', 10_000, 1, 1_000_000),
    },
  };
  if (problems.length > 0) throw new SimulatorConfigError(problems);
  return config;
}

function parseBool(v: string): boolean | string {
  const s = v.toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  return v;
}
