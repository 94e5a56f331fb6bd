import { AsyncLocalStorage } from 'node:async_hooks';
import {
  isProviderError,
  maskPhone,
  ProviderError,
  type SmsCost,
  type SmsProvider,
  type TwilioConfig,
} from '@otp-gateway/core';
import twilio from 'twilio';
import { abortedError, sendSignals } from '../http.errors.js';
import { statusCallbackFor } from './twilio.callback-url.js';
import { classifyTwilioFailure } from './twilio.errors.js';
import { callHandoff, createTwilioHttpClient, type TwilioCallScope } from './twilio.http-client.js';

export interface TwilioProviderOptions {
  /** Twilio's StatusCallback URL (`${PUBLIC_WEBHOOK_BASE_URL}/webhooks/twilio/status`); none: null. */
  statusCallbackUrl?: string | null;
  /** It names each message's OTP and attempt (statusCallbackFor); off, it is sent as it is. */
  callbackNamesAttempt?: boolean;
  /** Deadline of one send, connection to answer (the library's own default is 30 s). */
  timeoutMs: number;
}

/** Twilio keeps a queued message at most this long (ValidityPeriod range 1..36000 s). */
const MAX_VALIDITY_SECONDS = 36_000;

/** Seconds until `expiresAt`, clamped to what Twilio accepts: a code nobody can use is not worth sending late. */
export function validityPeriodSeconds(expiresAt: number, now = Date.now()): number {
  return Math.min(MAX_VALIDITY_SECONDS, Math.max(1, Math.floor((expiresAt - now) / 1000)));
}

/**
 * Twilio through the official library (`messages.create`), against `cfg.apiBaseUrl`.
 *
 * How the library is steered (twilio 6):
 * - one client for all sends, whose `httpClient` is ours (twilio.http-client.ts: node's http with keep-alive
 *   agents; the library's axios client cost a fifth of the worker's CPU per send), or the library's own
 *   `RequestClient` when HTTP(S)_PROXY is set;
 * - host: the `api` domain's `baseUrl` is set to `cfg.apiBaseUrl`, so requests go to
 *   `${apiBaseUrl}/2010-04-01/Accounts/{sid}/Messages.json`; `edge`/`region` are set empty so the
 *   library's TWILIO_EDGE/TWILIO_REGION lookups never rewrite that host;
 * - timeout and abort: each send's AbortSignal (and deadline) reaches its HTTP call (sends run concurrently on the
 *   one client), and the answer's status and headers are kept for that send, since a RestException drops them
 *   (Retry-After). Our client gets the send handed over as the library calls it (callHandoff); the library's
 *   axios client, behind a proxy, reads it in interceptors that run later, through AsyncLocalStorage. The
 *   library never retries (autoRetry off).
 */
export function createTwilioProvider(cfg: TwilioConfig, opts: TwilioProviderOptions): SmsProvider {
  const { scope, http } = useProxy() ? proxiedRequestClient(opts.timeoutMs) : directClient(opts.timeoutMs);
  const client = twilio(cfg.accountSid, cfg.authToken, {
    httpClient: http as unknown as twilio.RequestClient,
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
      const current: TwilioCallScope = { signal: signals.combined };
      const callback = statusCallbackFor(opts.statusCallbackUrl, opts.callbackNamesAttempt ? sms : null);
      try {
        const message = await scope.run(current, () =>
          client.messages.create({
            to: sms.to,
            ...(sms.sender ? { from: sms.sender } : sender),
            body: sms.body,
            ...(callback ? { statusCallback: callback.url } : {}),
            validityPeriod: validityPeriodSeconds(sms.expiresAt),
          }),
        );
        // a 2xx without a sid is no Twilio message (a wrong TWILIO_API_BASE_URL, a proxy's page): none was taken
        if (typeof message.sid !== 'string' || message.sid === '') {
          throw new ProviderError('twilio answered without a message sid', 'retryable', 'BAD_RESPONSE');
        }
        // Twilio gives the price once it is known, usually not yet in the create answer (then: `cost` below)
        const cost = priceOf(message);
        const answer = {
          messageId: message.sid,
          providerStatus: message.status,
          reportsNameAttempt: !!callback?.named,
        };
        return cost ? { ...answer, cost } : answer;
      } catch (err) {
        const e = isProviderError(err) ? err : classifyTwilioFailure(err, signals, current.response);
        log.debug({ provider: 'twilio', to: maskPhone(sms.to), kind: e.kind, code: e.code }, 'sms refused by provider');
        throw e;
      } finally {
        signals.done();
      }
    },

    /** The message resource's price (`GET .../Messages/{sid}.json`), set by Twilio once the message went out. */
    async cost(messageId, { signal }) {
      const signals = sendSignals(signal, opts.timeoutMs);
      const current: TwilioCallScope = { signal: signals.combined };
      try {
        const message = await scope.run(current, () => client.messages(messageId).fetch());
        return priceOf(message);
      } catch (err) {
        // classified like a send's failure: the raw error could quote the answer, and the message resource holds
        // the SMS body (the code): a JSON parse error's message carries a piece of its input
        throw classifyTwilioFailure(err, signals, current.response);
      } finally {
        signals.done();
      }
    },
  };
}

/** A message's price as Twilio writes it (a negative amount: a charge, in `price_unit`), or null when not yet set. */
function priceOf(message: { price: string | null; priceUnit: string | null }): SmsCost | null {
  const amount = message.price == null ? Number.NaN : Math.abs(Number(message.price));
  return Number.isFinite(amount) && message.priceUnit ? { amount, currency: message.priceUnit.toUpperCase() } : null;
}

const useProxy = () => Boolean(process.env.HTTPS_PROXY || process.env.https_proxy || process.env.HTTP_PROXY);
/** How a send reaches the HTTP client: `scope.run(send, call)` around the library call. */
interface SteeredClient {
  readonly scope: { run<R>(send: TwilioCallScope, call: () => R): R };
  readonly http: unknown;
}

/** Ours (twilio.http-client.ts), handed each send as the library calls it. */
function directClient(timeoutMs: number): SteeredClient {
  const handoff = callHandoff();
  return { scope: handoff, http: createTwilioHttpClient({ timeoutMs, scope: handoff.take }) };
}

/** The library's own axios client (it knows HTTP(S)_PROXY), steered like ours: the send's signal, its answer kept. */
function proxiedRequestClient(timeoutMs: number): SteeredClient {
  const scope = new AsyncLocalStorage<TwilioCallScope>();
  const http = new twilio.RequestClient({ timeout: timeoutMs, keepAlive: true });
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
  return { scope, http };
}
