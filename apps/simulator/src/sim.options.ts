/** The two vendors the simulator fakes. */
export const SIM_PROVIDERS = ['twilio', 'octopush'] as const;
export type SimProvider = (typeof SIM_PROVIDERS)[number];
export const isSimProvider = (v: string): v is SimProvider => (SIM_PROVIDERS as readonly string[]).includes(v);

/**
 * A deterministic fault, queued with `failNext`. Each vendor answers it in its own words (see the routes):
 * - `auth`, `bad_sender`, `region`, `no_credit`: the vendor refuses the account or sender (4xx);
 * - `invalid_number`, `opted_out`: the vendor refuses the recipient;
 * - `rate_limit` (429 + Retry-After), `server_error` (500), `down` (503);
 * - `timeout`: the request hangs (never answered, see timeoutHangMs); `reset`: the connection is reset;
 * - `undelivered`: accepted, then reported undelivered; `lost_callback`: accepted, no delivery report;
 * - `no_final_report`: accepted, and reported no further than a carrier took it, as destinations without delivery
 *   reports are (Twilio: `sent`, and nothing after it; Octopush: `UNKNOWN_DELIVERY`);
 * - `accepted_timeout`: the message is accepted (it reaches the inbox and is reported), then the answer hangs
 *   like `timeout`: the caller cannot know it went out (queued with failNext). Octopush keeps its request id:
 *   a retry with the same one is refused with code 120 (or answered as the first, duplicateRequest `replay`).
 * - `reports_first` (Twilio): the message is accepted and its status callbacks are posted before the answer, which
 *   comes once they went out: Twilio's callbacks can beat its API's answer to the sender.
 */
export const FAULT_KINDS = [
  'auth',
  'bad_sender',
  'region',
  'no_credit',
  'invalid_number',
  'opted_out',
  'rate_limit',
  'server_error',
  'down',
  'timeout',
  'reset',
  'undelivered',
  'lost_callback',
  'no_final_report',
  'accepted_timeout',
  'reports_first',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Kinds a vendor has no equivalent for (the control API refuses them). */
export const UNSUPPORTED_KINDS: Readonly<Record<SimProvider, readonly FaultKind[]>> = {
  twilio: ['no_credit'],
  octopush: ['region', 'reports_first'],
};

/** Fault settings of one provider; rates are probabilities from 0 to 1 drawn per request. */
export interface FaultSettings {
  /** Delay before the vendor looks at a request (a client that gives up meanwhile sends nothing). */
  latencyMs: number;
  /** Share of requests answered 500. */
  errorRate: number;
  /** Share of requests answered 429 with Retry-After. */
  rateLimitRate: number;
  /** Retry-After (seconds) of a 429; 0: the 429 carries none (Twilio's often do not). */
  retryAfterSeconds: number;
  /** Share of requests that hang and are never answered. */
  timeoutRate: number;
  /** Every request answered 503. */
  down: boolean;
  /** Share of accepted messages that end undelivered. */
  undeliveredRate: number;
  /** Share of accepted messages whose delivery reports are never sent. */
  lostCallbackRate: number;
  /** Delay between acceptance and each delivery report. */
  callbackDelayMs: number;
  /** Faults applied to the next `count` requests, before any rate. */
  failNext: { count: number; kind: FaultKind } | null;
}

export const NO_FAULTS: Readonly<FaultSettings> = Object.freeze({
  latencyMs: 0,
  errorRate: 0,
  rateLimitRate: 0,
  retryAfterSeconds: 1,
  timeoutRate: 0,
  down: false,
  undeliveredRate: 0,
  lostCallbackRate: 0,
  callbackDelayMs: 500,
  failNext: null,
});

/** Credentials the simulator accepts when none are configured (dev and tests). */
export const SIMULATOR_DEFAULTS = Object.freeze({
  twilio: Object.freeze({
    accountSid: 'ACsimulator00000000000000000000000',
    authToken: 'simulator0twilio0auth0token00000',
  }),
  octopush: Object.freeze({ apiKey: 'simulator-octopush-api-key', apiLogin: 'simulator@example.com' }),
});

export interface SimulatorOptions {
  readonly twilio: { readonly accountSid: string; readonly authToken: string };
  readonly octopush: {
    readonly apiKey: string;
    readonly apiLogin: string;
    /** Where delivery reports are POSTed (Octopush takes it from the account settings); null: none sent. */
    readonly callbackUrl: string | null;
    /**
     * A repeated `request_id`: `replay` answers the first answer again; `reject` answers what the real
     * Octopush documents (a validation error, code 120). Neither sends a second message.
     */
    readonly duplicateRequest: 'replay' | 'reject';
  };
  /** Fault settings at start, and after POST /_sim/reset. */
  readonly faults: Readonly<Record<SimProvider, Readonly<FaultSettings>>>;
  /** How long a `timeout` request hangs before its connection is dropped (released at close). */
  readonly timeoutHangMs: number;
  /** Messages kept in the inbox; the oldest go first. */
  readonly inboxLimit: number;
  /** Fastify `logger` option (pino options, or false). */
  readonly logger: boolean | Record<string, unknown>;
  /** Random source of the fault rates (tests pass a fixed one). */
  readonly random: () => number;
}

/** What buildSimulator takes: any part may be left out. */
export interface SimulatorInput {
  twilio?: Partial<SimulatorOptions['twilio']>;
  octopush?: Partial<SimulatorOptions['octopush']>;
  faults?: Partial<Record<SimProvider, Partial<FaultSettings>>>;
  timeoutHangMs?: number;
  inboxLimit?: number;
  logger?: SimulatorOptions['logger'];
  random?: () => number;
}

/** Fills in defaults. */
export function resolveSimulatorOptions(input: SimulatorInput = {}): SimulatorOptions {
  return {
    twilio: { ...SIMULATOR_DEFAULTS.twilio, ...input.twilio },
    octopush: { ...SIMULATOR_DEFAULTS.octopush, callbackUrl: null, duplicateRequest: 'reject', ...input.octopush },
    faults: {
      twilio: { ...NO_FAULTS, ...input.faults?.twilio },
      octopush: { ...NO_FAULTS, ...input.faults?.octopush },
    },
    timeoutHangMs: input.timeoutHangMs ?? 30_000,
    inboxLimit: input.inboxLimit ?? 10_000,
    logger: input.logger ?? false,
    random: input.random ?? Math.random,
  };
}
