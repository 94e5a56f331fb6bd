import { AsyncLocalStorage } from 'node:async_hooks';
import { Agent as HttpAgent } from 'node:http';
import https from 'node:https';
import { maskPhone, type SmsProvider, type TwilioConfig } from '@otp-gateway/core';
import twilio from 'twilio';
import { abortedError, sendSignals } from '../http.errors.js';
import { classifyTwilioFailure } from './twilio.errors.js';

export interface TwilioProviderOptions {
  /** Twilio's StatusCallback URL (`${PUBLIC_WEBHOOK_BASE_URL}/webhooks/twilio/status`); none when null. */
  statusCallbackUrl?: string | null;
  /** Deadline of one send, connection to answer (the library's own default is 30 s). */
  timeoutMs: number;
}

/** Twilio keeps a queued message at most this long (ValidityPeriod range 1..36000 s). */
const MAX_VALIDITY_SECONDS = 36_000;

/** Seconds until `expiresAt`, clamped to what Twilio accepts: a code nobody can use is not worth sending late. */
export function validityPeriodSeconds(expiresAt: number, now = Date.now()): number {
  return Math.min(MAX_VALIDITY_SECONDS, Math.max(1, Math.floor((expiresAt - now) / 1000)));
}

/** What one send carries through the shared client: its abort signal, and the answer's headers once known. */
interface SendScope {
  readonly signal: AbortSignal;
  response?: { statusCode: number; headers?: Record<string, unknown> };
}

/**
 * Twilio through the official library (`messages.create`), against `cfg.apiBaseUrl`.
 *
 * How the library is steered (twilio 6):
 * - one client and one `RequestClient` (the library's axios client) for all sends, with keep-alive agents for
 *   http and https: building them per send costs a new connection and most of a send's CPU;
 * - host: the `api` domain's `baseUrl` is set to `cfg.apiBaseUrl`, so requests go to
 *   `${apiBaseUrl}/2010-04-01/Accounts/{sid}/Messages.json`; `edge`/`region` are set empty so the
 *   library's TWILIO_EDGE/TWILIO_REGION lookups never rewrite that host;
 * - timeout and abort: `timeout` = timeoutMs on the client, and an interceptor adds the current send's
 *   AbortSignal, found through AsyncLocalStorage (sends run concurrently on the one client); another keeps
 *   the answer's headers for that send, since a RestException drops them (Retry-After). The library never
 *   retries (autoRetry off).
 */
export function createTwilioProvider(cfg: TwilioConfig, opts: TwilioProviderOptions): SmsProvider {
  const scope = new AsyncLocalStorage<SendScope>();
  const http = new twilio.RequestClient({ timeout: opts.timeoutMs, keepAlive: true });
  http.axios.defaults.httpAgent = new HttpAgent({ keepAlive: true });
  // With HTTP_PROXY set the library uses its proxy agent; keep it then.
  if (!process.env.HTTP_PROXY) http.axios.defaults.httpsAgent = new https.Agent({ keepAlive: true });
  http.axios.interceptors.request.use((config) => {
    const current = scope.getStore();
    if (current) config.signal = current.signal;
    return config;
  });
  http.axios.interceptors.response.use((res) => {
    const current = scope.getStore();
    if (current) current.response = { statusCode: res.status, headers: res.headers as Record<string, unknown> };
    return res;
  });
  const client = twilio(cfg.accountSid, cfg.authToken, {
    httpClient: http,
    edge: '',
    region: '',
    autoRetry: false,
    logLevel: 'info',
  });
  client.api.baseUrl = cfg.apiBaseUrl;
  const sender = cfg.messagingServiceSid ? { messagingServiceSid: cfg.messagingServiceSid } : { from: cfg.from ?? '' };

  return {
    id: 'twilio',
    async send(sms, { signal, log }) {
      if (signal.aborted) throw abortedError('twilio');
      const signals = sendSignals(signal, opts.timeoutMs);
      const current: SendScope = { signal: signals.combined };
      try {
        const message = await scope.run(current, () =>
          client.messages.create({
            to: sms.to,
            ...(sms.sender ? { from: sms.sender } : sender),
            body: sms.body,
            ...(opts.statusCallbackUrl ? { statusCallback: opts.statusCallbackUrl } : {}),
            validityPeriod: validityPeriodSeconds(sms.expiresAt),
          }),
        );
        return { messageId: message.sid, providerStatus: message.status };
      } catch (err) {
        const e = classifyTwilioFailure(err, signals, current.response);
        log.debug({ provider: 'twilio', to: maskPhone(sms.to), kind: e.kind, code: e.code }, 'sms refused by provider');
        throw e;
      }
    },
  };
}
