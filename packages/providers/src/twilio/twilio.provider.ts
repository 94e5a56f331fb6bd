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

/**
 * Twilio through the official library (`messages.create`), against `cfg.apiBaseUrl`.
 *
 * How the library is steered (twilio 6):
 * - host: the `api` domain's `baseUrl` is set to `cfg.apiBaseUrl`, so requests go to
 *   `${apiBaseUrl}/2010-04-01/Accounts/{sid}/Messages.json`; `edge`/`region` are set empty so the
 *   library's TWILIO_EDGE/TWILIO_REGION lookups never rewrite that host;
 * - timeout and abort: each send gets its own `RequestClient` (the library's axios client) with
 *   `timeout` = timeoutMs and an interceptor that adds the send's AbortSignal; the library never retries
 *   (autoRetry off), and its `lastResponse` keeps the headers a RestException drops (Retry-After).
 */
export function createTwilioProvider(cfg: TwilioConfig, opts: TwilioProviderOptions): SmsProvider {
  // One keep-alive pool for all sends (each RequestClient would otherwise open its own TLS connections).
  const httpsAgent = new https.Agent({ keepAlive: true });
  const sender = cfg.messagingServiceSid ? { messagingServiceSid: cfg.messagingServiceSid } : { from: cfg.from ?? '' };

  return {
    id: 'twilio',
    async send(sms, { signal, log }) {
      if (signal.aborted) throw abortedError('twilio');
      const signals = sendSignals(signal, opts.timeoutMs);
      const http = new twilio.RequestClient({ timeout: opts.timeoutMs, keepAlive: true });
      // With HTTP_PROXY set the library uses its proxy agent; keep it then.
      if (!process.env.HTTP_PROXY) http.axios.defaults.httpsAgent = httpsAgent;
      http.axios.interceptors.request.use((config) => {
        config.signal = signals.combined;
        return config;
      });
      const client = twilio(cfg.accountSid, cfg.authToken, {
        httpClient: http,
        edge: '',
        region: '',
        autoRetry: false,
        logLevel: 'info',
      });
      client.api.baseUrl = cfg.apiBaseUrl;

      const fields = { otpId: sms.otpId, attemptId: sms.attemptId, provider: 'twilio', to: maskPhone(sms.to) };
      try {
        const message = await client.messages.create({
          to: sms.to,
          ...sender,
          body: sms.body,
          ...(opts.statusCallbackUrl ? { statusCallback: opts.statusCallbackUrl } : {}),
          validityPeriod: validityPeriodSeconds(sms.expiresAt),
        });
        log.info({ ...fields, messageId: message.sid, providerStatus: message.status }, 'sms accepted by provider');
        return { messageId: message.sid, providerStatus: message.status };
      } catch (err) {
        const e = classifyTwilioFailure(err, signals, http.lastResponse);
        log.warn({ ...fields, kind: e.kind, code: e.code, retryAfterMs: e.retryAfterMs }, 'sms refused by provider');
        throw e;
      }
    },
  };
}
