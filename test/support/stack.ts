import type { RedisClient } from '../../packages/store/src/index.js';
import { type AppProcess, LOAD_TEST_GUARDS, startApp, TEST_SECRET, waitForHttp } from './processes.js';
import { type IsolatedStore, isolatedRedis } from './redis.js';
import { freePort } from './redis-server.js';

export const STACK_KEY = 'stack-test-secret-0123456789';
export const SIM_TWILIO = { sid: 'ACsimulator00000000000000000000000', token: 'simulator0twilio0auth0token00000' };
export const SIM_OCTOPUSH = { key: 'simulator-octopush-api-key', login: 'simulator@example.com' };
export const OCTOPUSH_TOKEN = 'octopush-webhook-token-0123456789';

export interface InboxMessage {
  provider: 'twilio' | 'octopush';
  to: string;
  body: string;
  messageId: string;
  [k: string]: unknown;
}

/** Real processes on loopback: simulator, API, N workers and optionally the callbacks app, on an isolated key prefix. */
export interface Stack {
  /** An admin client on the stack's Redis, and its share of it (key prefix). */
  readonly redis: RedisClient;
  readonly store: IsolatedStore;
  readonly apiUrl: string;
  readonly simUrl: string;
  readonly webhooksUrl: string | null;
  readonly env: Record<string, string>;
  readonly workers: AppProcess[];
  readonly procs: AppProcess[];
  startWorker(extra?: Record<string, string>): Promise<AppProcess>;
  send(phoneNumber: string, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  verify(body: Record<string, string>): Promise<{ status: number; body: any }>;
  otp(id: string): Promise<any>;
  inbox(phone?: string): Promise<InboxMessage[]>;
  faults(provider: 'twilio' | 'octopush', settings: Record<string, unknown>): Promise<void>;
  stop(): Promise<void>;
}

export async function startStack(
  opts: {
    workers?: number;
    webhooks?: boolean;
    env?: Record<string, string>;
    workerEnv?: Record<string, string>;
    /** Another Redis than the suite's (a cluster with replicas, a Sentinel set). */
    store?: IsolatedStore;
  } = {},
): Promise<Stack> {
  const store = opts.store ?? (await isolatedRedis());
  const { redis } = store;
  const [apiPort, simPort, hookPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const simUrl = `http://127.0.0.1:${simPort}`;
  const webhooksUrl = opts.webhooks ? `http://127.0.0.1:${hookPort}` : null;
  const env: Record<string, string> = {
    ...store.env,
    OTP_SECRET: TEST_SECRET,
    API_KEYS: `test:${STACK_KEY}`,
    API_PORT: String(apiPort),
    SIMULATOR_PORT: String(simPort),
    WEBHOOKS_PORT: String(hookPort),
    OTP_RESEND_COOLDOWN_SECONDS: '0',
    SMS_PROVIDERS: 'twilio,octopush',
    TWILIO_ACCOUNT_SID: SIM_TWILIO.sid,
    TWILIO_AUTH_TOKEN: SIM_TWILIO.token,
    TWILIO_FROM: '+15005550006',
    TWILIO_API_BASE_URL: simUrl,
    OCTOPUSH_API_KEY: SIM_OCTOPUSH.key,
    OCTOPUSH_API_LOGIN: SIM_OCTOPUSH.login,
    OCTOPUSH_API_BASE_URL: `${simUrl}/v1/public`,
    OCTOPUSH_WEBHOOK_TOKEN: OCTOPUSH_TOKEN,
    PROVIDER_TIMEOUT_MS: '2000',
    WORKER_LOCK_MS: '3000',
    SIM_CALLBACK_DELAY_MS: '200',
    ...LOAD_TEST_GUARDS,
    ...(webhooksUrl
      ? {
          PUBLIC_WEBHOOK_BASE_URL: webhooksUrl,
          SIM_OCTOPUSH_CALLBACK_URL: `${webhooksUrl}/webhooks/octopush/delivery/${OCTOPUSH_TOKEN}`,
        }
      : {}),
    ...opts.env,
  };
  const procs: AppProcess[] = [];
  const workers: AppProcess[] = [];
  const sim = startApp('simulator', env);
  procs.push(sim);
  const api = startApp('api', env);
  procs.push(api);
  if (webhooksUrl) procs.push(startApp('webhooks', env));
  await Promise.all([
    waitForHttp(`${simUrl}/healthz`),
    waitForHttp(`${apiUrl}/healthz`),
    webhooksUrl ? waitForHttp(`${webhooksUrl}/healthz`) : Promise.resolve(),
  ]);

  const startWorker = async (extra: Record<string, string> = {}) => {
    const w = startApp('worker', { ...env, ...opts.workerEnv, ...extra });
    procs.push(w);
    workers.push(w);
    await w.waitForLog((l) => l.msg === 'worker started');
    return w;
  };
  for (let i = 0; i < (opts.workers ?? 1); i++) await startWorker();

  const json = async (r: Response) => ({ status: r.status, body: await r.json().catch(() => null) });
  const auth = { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json' };
  return {
    redis,
    store,
    apiUrl,
    simUrl,
    webhooksUrl,
    env,
    workers,
    procs,
    startWorker,
    send: async (phoneNumber, headers = {}) =>
      json(
        await fetch(`${apiUrl}/v1/otp/send`, {
          method: 'POST',
          headers: { ...auth, ...headers },
          body: JSON.stringify({ phoneNumber }),
        }),
      ),
    verify: async (body) =>
      json(await fetch(`${apiUrl}/v1/otp/verify`, { method: 'POST', headers: auth, body: JSON.stringify(body) })),
    otp: async (id) => (await fetch(`${apiUrl}/v1/otp/${id}`, { headers: auth })).json(),
    inbox: async (phone) => {
      const r = await fetch(`${simUrl}/_sim/inbox.json${phone ? `?phone=${encodeURIComponent(phone)}` : ''}`);
      const body = (await r.json()) as InboxMessage[] | { messages: InboxMessage[] };
      return Array.isArray(body) ? body : body.messages;
    },
    faults: async (provider, settings) => {
      const r = await fetch(`${simUrl}/_sim/faults/${provider}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(settings),
      });
      if (!r.ok) throw new Error(`faults ${provider}: ${r.status} ${await r.text()}`);
    },
    async stop() {
      await Promise.all(procs.map((p) => p.stop()));
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** The code in an SMS body (the digits run of the configured length). */
export const codeIn = (body: string, length = 6) => new RegExp(`\\b(\\d{${length}})\\b`).exec(body)?.[1] ?? null;
