import { FAULT_KINDS, type FaultKind, type FaultSettings, type SimProvider, UNSUPPORTED_KINDS } from './sim.options.js';

/** The faults of both providers, changeable at runtime. */
export interface FaultState {
  get(provider: SimProvider): Readonly<FaultSettings>;
  all(): Record<SimProvider, Readonly<FaultSettings>>;
  /** Merges a validated patch into a provider's settings. */
  update(provider: SimProvider, patch: Partial<FaultSettings>): Readonly<FaultSettings>;
  reset(): void;
  /** The fault the next request meets: a queued `failNext` first, then `down`, then the rates. */
  draw(provider: SimProvider): FaultKind | null;
  /** How an accepted message ends: delivered, undelivered, or with no report at all. */
  drawDelivery(provider: SimProvider): 'delivered' | 'undelivered' | 'lost_callback';
}

export function createFaultState(
  initial: Readonly<Record<SimProvider, Readonly<FaultSettings>>>,
  random: () => number,
): FaultState {
  const copy = (s: Readonly<FaultSettings>): FaultSettings => ({ ...s, failNext: s.failNext && { ...s.failNext } });
  let state: Record<SimProvider, FaultSettings> = { twilio: copy(initial.twilio), octopush: copy(initial.octopush) };

  return {
    get: (p) => state[p],
    all: () => ({ twilio: state.twilio, octopush: state.octopush }),
    update(p, patch) {
      state[p] = { ...state[p], ...patch };
      return state[p];
    },
    reset() {
      state = { twilio: copy(initial.twilio), octopush: copy(initial.octopush) };
    },
    draw(p) {
      const s = state[p];
      if (s.failNext && s.failNext.count > 0) {
        const kind = s.failNext.kind;
        s.failNext.count -= 1;
        if (s.failNext.count === 0) s.failNext = null;
        return kind;
      }
      if (s.down) return 'down';
      const r = random();
      let acc = 0;
      for (const [kind, rate] of [
        ['timeout', s.timeoutRate],
        ['rate_limit', s.rateLimitRate],
        ['server_error', s.errorRate],
      ] as const) {
        acc += rate;
        if (r < acc) return kind;
      }
      return null;
    },
    drawDelivery(p) {
      const s = state[p];
      const r = random();
      if (r < s.lostCallbackRate) return 'lost_callback';
      if (r < s.lostCallbackRate + s.undeliveredRate) return 'undelivered';
      return 'delivered';
    },
  };
}

const RATES = ['errorRate', 'rateLimitRate', 'timeoutRate', 'undeliveredRate', 'lostCallbackRate'] as const;
const DURATIONS = ['latencyMs', 'callbackDelayMs', 'retryAfterSeconds'] as const;
const MAX_DURATION = 600_000;

/** Validates a partial FaultSettings from the control API or env; returns it, or the list of problems. */
export function parseFaultPatch(
  provider: SimProvider,
  input: unknown,
): { ok: true; patch: Partial<FaultSettings> } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const patch: Partial<FaultSettings> = {};
  if (!input || typeof input !== 'object' || Array.isArray(input))
    return { ok: false, problems: ['body must be a JSON object'] };
  for (const [key, value] of Object.entries(input)) {
    if ((RATES as readonly string[]).includes(key)) {
      if (typeof value !== 'number' || !(value >= 0 && value <= 1))
        problems.push(`${key} must be a number from 0 to 1`);
      else patch[key as (typeof RATES)[number]] = value;
    } else if ((DURATIONS as readonly string[]).includes(key)) {
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > MAX_DURATION) {
        problems.push(`${key} must be a whole number from 0 to ${MAX_DURATION}`);
      } else patch[key as (typeof DURATIONS)[number]] = value as number;
    } else if (key === 'down') {
      if (typeof value !== 'boolean') problems.push('down must be true or false');
      else patch.down = value;
    } else if (key === 'failNext') {
      const parsed = parseFailNext(provider, value);
      if (typeof parsed === 'string') problems.push(parsed);
      else patch.failNext = parsed;
    } else problems.push(`unknown setting "${key}"`);
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, patch };
}

function parseFailNext(provider: SimProvider, value: unknown): FaultSettings['failNext'] | string {
  if (value === null) return null;
  const v = value as { count?: unknown; kind?: unknown };
  if (typeof v !== 'object' || typeof v.kind !== 'string' || !(FAULT_KINDS as readonly string[]).includes(v.kind)) {
    return `failNext must be null or {"count", "kind"} with kind one of ${FAULT_KINDS.join(', ')}`;
  }
  const kind = v.kind as FaultKind;
  if (UNSUPPORTED_KINDS[provider].includes(kind)) return `${provider} has no fault of kind ${kind}`;
  const count = v.count ?? 1;
  if (!Number.isInteger(count) || (count as number) < 1 || (count as number) > 1_000_000) {
    return 'failNext.count must be a whole number from 1 to 1000000';
  }
  return { count: count as number, kind };
}
