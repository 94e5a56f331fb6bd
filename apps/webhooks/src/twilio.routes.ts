import { attemptOfStatusCallback } from '@otp-gateway/providers';
import type { DeliveryReport } from '@otp-gateway/store';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import twilio from 'twilio';
import type { WebhookMetrics } from './metrics.js';
import { type RecordDeps, recordReport } from './record-report.js';
import { noteForLog } from './request-log.js';
import { twilioStatusToDelivery } from './status-maps.js';
import { refuse } from './webhook.errors.js';

export const TWILIO_STATUS_PATH = '/webhooks/twilio/status';

export interface TwilioRoutesOptions extends RecordDeps {
  /** TWILIO_AUTH_TOKEN; null: the route answers 404 not_configured. */
  readonly authToken: string | null;
  /** PUBLIC_WEBHOOK_BASE_URL, without a trailing slash. */
  readonly publicBaseUrl: string | null;
  readonly metrics: WebhookMetrics;
}

const str = (v: unknown): string | null => (typeof v === 'string' && v.trim() !== '' ? v.trim() : null);

const SID = { type: 'string', pattern: '^(SM|MM)[0-9a-fA-F]{32}$' } as const;
const STATUS = { type: 'string', pattern: '^[a-z_]{1,40}$' } as const;

/**
 * The status callback's declared shape: the fields the gateway reads, bounded. Every other parameter is allowed
 * (Twilio adds some, and signs them all).
 */
export const TWILIO_STATUS_SCHEMA = {
  type: 'object',
  anyOf: [{ required: ['MessageSid', 'MessageStatus'] }, { required: ['SmsSid', 'SmsStatus'] }],
  properties: {
    MessageSid: SID,
    SmsSid: SID,
    MessageStatus: STATUS,
    SmsStatus: STATUS,
    ErrorCode: { type: 'string', pattern: '^[0-9]{0,10}$' },
    To: { type: 'string', maxLength: 40 },
  },
} as const;

/**
 * `POST /webhooks/twilio/status`: Twilio's form-encoded status callback. The `X-Twilio-Signature` is checked with
 * the twilio library over the public URL Twilio called and every parameter it sent (unknown ones included);
 * a missing or wrong signature is 403 and changes nothing. An authentic report answers 200 whatever it did. The
 * URL's query may name the OTP attempt the message counts as (`?otp=&attempt=`, statusCallbackFor, with
 * TWILIO_CALLBACK_NAMES_ATTEMPT on the workers); without it (the default) the message index finds the attempt.
 */
export async function twilioRoutes(app: FastifyInstance, opts: TwilioRoutesOptions): Promise<void> {
  const { authToken, publicBaseUrl, metrics } = opts;

  // The signature is checked before the body's shape (preValidation): without it, the answer is 403 whatever it holds.
  const authenticate = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!authToken || !publicBaseUrl) {
      return refuse(reply, 404, 'not_configured', 'Twilio callbacks are not configured (TWILIO_AUTH_TOKEN)');
    }
    const params = req.body && typeof req.body === 'object' ? (req.body as Record<string, unknown>) : {};
    const signature = req.headers['x-twilio-signature'];
    // Twilio signs the URL it called: the configured public one, with the query string if any.
    const q = req.url.indexOf('?');
    const url = publicBaseUrl + TWILIO_STATUS_PATH + (q === -1 ? '' : req.url.slice(q));
    if (typeof signature !== 'string' || !twilio.validateRequest(authToken, signature, url, params)) {
      metrics.authFailures.inc({ provider: 'twilio' });
      metrics.received.inc({ provider: 'twilio', result: 'forbidden' });
      req.log.warn({ provider: 'twilio', signed: typeof signature === 'string' }, 'callback signature refused');
      return refuse(reply, 403, 'invalid_signature', 'X-Twilio-Signature does not match this request');
    }
  };

  app.post(
    TWILIO_STATUS_PATH,
    { preValidation: authenticate, schema: { body: TWILIO_STATUS_SCHEMA } },
    async (req, reply) => {
      const params = req.body as Record<string, unknown>;
      const messageId = str(params.MessageSid) ?? str(params.SmsSid);
      const providerStatus = str(params.MessageStatus) ?? str(params.SmsStatus);
      if (!messageId || !providerStatus) {
        metrics.received.inc({ provider: 'twilio', result: 'invalid' });
        return refuse(reply, 400, 'invalid_request', 'MessageSid and MessageStatus are required');
      }
      const status = twilioStatusToDelivery(providerStatus);
      if (!status) {
        metrics.received.inc({ provider: 'twilio', result: 'unknown_status' });
        req.log.warn({ provider: 'twilio', messageId, providerStatus }, 'unknown delivery status ignored');
        return reply.code(200).send();
      }
      const report: DeliveryReport = {
        provider: 'twilio',
        messageId,
        status,
        providerStatus,
        errorCode: str(params.ErrorCode),
        at: Date.now(),
        phoneNumber: str(params.To),
      };
      // the attempt the worker put in the StatusCallback URL (signed with it), if any; else the message index finds it
      const named = attemptOfStatusCallback(req.query) ?? undefined;
      const result = await recordReport(opts, report, req.log, (fields) => noteForLog(req, fields), named);
      metrics.received.inc({ provider: 'twilio', result });
      if (result === 'error') return refuse(reply, 503, 'store_unavailable', 'the report could not be recorded');
      return reply.code(200).send();
    },
  );
}
