import http from 'node:http';
import https from 'node:https';
import {
  maskPhone,
  OCTOPUSH_SENDER_PATTERN,
  type OctopushConfig,
  ProviderError,
  type SmsProvider,
  UNTRACKED_ACCEPTANCE,
} from '@otp-gateway/core';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import { abortedError, sendSignals, transportError } from '../http.errors.js';
import { classifyOctopushResponse, OCTOPUSH_DUPLICATE_REQUEST, octopushCode } from './octopush.errors.js';

export interface OctopushProviderOptions {
  /** Deadline of one send, connection to answer. */
  timeoutMs: number;
}

/** The campaign Octopush is sent: one recipient, a transactional ("alert") premium SMS. */
export interface OctopushSendBody {
  recipients: { phone_number: string }[];
  text: string;
  type: 'sms_premium';
  purpose: 'alert';
  sender: string;
  request_id: string;
}

/**
 * Octopush over its JSON API: `POST {apiBaseUrl}/sms-campaign/send` with `api-key`/`api-login` headers.
 * The attempt id is the `request_id`, so a repeated call (a retry after a lost answer) sends nothing
 * twice. The answer's `sms_ticket` is the message id that delivery reports carry as `message_id`.
 */
export function createOctopushProvider(
  cfg: OctopushConfig,
  opts: OctopushProviderOptions,
  deps: { http?: AxiosInstance } = {},
): SmsProvider {
  const client =
    deps.http ??
    axios.create({
      httpAgent: new http.Agent({ keepAlive: true }),
      httpsAgent: new https.Agent({ keepAlive: true }),
      // No redirects on a send API; also keeps axios on node's http directly instead of follow-redirects.
      maxRedirects: 0,
    });
  const url = `${cfg.apiBaseUrl.replace(/\/+$/, '')}/sms-campaign/send`;
  const headers = { 'api-key': cfg.apiKey, 'api-login': cfg.apiLogin, 'Content-Type': 'application/json' };

  return {
    id: 'octopush',
    async send(sms, { signal, log }) {
      if (signal.aborted) throw abortedError('octopush');
      const fields = { otpId: sms.otpId, attemptId: sms.attemptId, provider: 'octopush', to: maskPhone(sms.to) };
      const body: OctopushSendBody = {
        recipients: [{ phone_number: sms.to }],
        text: sms.body,
        type: 'sms_premium',
        purpose: 'alert',
        sender: octopushSender(sms.sender, cfg.sender),
        request_id: sms.attemptId,
      };

      let res: AxiosResponse<unknown>;
      const signals = sendSignals(signal, opts.timeoutMs);
      try {
        res = await client.post(url, body, {
          headers,
          timeout: opts.timeoutMs,
          signal: signals.combined,
          validateStatus: () => true,
        });
      } catch (err) {
        const e = transportError('octopush', err, signals);
        log.debug({ ...fields, kind: e.kind, code: e.code }, 'sms refused by provider');
        throw e;
      } finally {
        signals.done();
      }

      const ticket = (res.data as { sms_ticket?: unknown } | null)?.sms_ticket;
      if (res.status >= 200 && res.status < 300 && typeof ticket === 'string' && ticket) {
        // Octopush accounts are billed in euros: total_cost is the campaign's price (one recipient here)
        const cost = (res.data as { total_cost?: unknown }).total_cost;
        return typeof cost === 'number' && Number.isFinite(cost) && cost >= 0
          ? { messageId: ticket, cost: { amount: cost, currency: 'EUR' } }
          : { messageId: ticket };
      }
      if (res.status === 400 && octopushCode(res.data) === OCTOPUSH_DUPLICATE_REQUEST) {
        // Octopush already took this very request (our earlier call's answer was lost). The message is on
        // its way, but its ticket is unknown here, so no delivery report will match it.
        log.warn(fields, 'sms already accepted by provider (repeated request_id)');
        return { messageId: `request_id:${sms.attemptId}`, providerStatus: UNTRACKED_ACCEPTANCE };
      }
      const e =
        res.status >= 200 && res.status < 300
          ? new ProviderError('octopush answered without an sms_ticket', 'retryable', 'BAD_RESPONSE')
          : classifyOctopushResponse(res.status, res.data, res.headers['retry-after']);
      log.debug({ ...fields, kind: e.kind, code: e.code, retryAfterMs: e.retryAfterMs }, 'sms refused by provider');
      throw e;
    },
  };
}

/**
 * The sender Octopush is sent: a key's own when Octopush takes it, else OCTOPUSH_SENDER. A key's sender that suits
 * Twilio (a space, a phone number) would fail every send of that key through Octopush (code 106).
 */
export const octopushSender = (keySender: string | null | undefined, configured: string): string =>
  keySender && OCTOPUSH_SENDER_PATTERN.test(keySender) ? keySender : configured;

/**
 * The API keys whose own sender Octopush will not take (OCTOPUSH_SENDER goes out instead), for the worker to log
 * at start and on each reload; none without Octopush.
 */
export function octopushSenderWarnings(
  keys: Iterable<{ readonly name: string; readonly sender: string | null }>,
  octopush: { readonly sender: string } | null | undefined,
): { key: string; sender: string; instead: string }[] {
  if (!octopush) return [];
  return [...keys].flatMap((k) =>
    k.sender !== null && octopushSender(k.sender, octopush.sender) !== k.sender
      ? [{ key: k.name, sender: k.sender, instead: octopush.sender }]
      : [],
  );
}
