import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type InboxMessage, mask } from './inbox.js';
import { countSegments } from './segments.js';
import { preflight, type SimContext, type TransportAnswers } from './sim.context.js';
import type { FaultKind } from './sim.options.js';
import { dropConnection } from './timing.js';
import { API_VERSION, scheduleReports } from './twilio.reports.js';

const E164 = /^\+[1-9]\d{6,14}$/;
/** Alphanumeric sender ID (1-11 letters, digits, spaces, at least one letter) or a short code. */
const OTHER_SENDER = /^((?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}|\d{5,6})$/;

/**
 * Twilio's test-credential magic numbers (twilio.com/docs/iam/test-credentials), answered with the same
 * error codes so scenarios written against Twilio's test account run here too.
 */
const MAGIC_FROM: Record<string, [number, string]> = {
  '+15005550001': [
    21212,
    "The 'From' number +15005550001 is not a valid phone number, shortcode, or alphanumeric sender ID.",
  ],
  '+15005550007': [
    21606,
    "The 'From' phone number provided (+15005550007) is not a valid message-capable Twilio phone number for this destination/account.",
  ],
  '+15005550008': [21611, "This 'From' number has exceeded the maximum number of queued messages"],
  '+15005550009': [
    21606,
    "The 'From' phone number provided (+15005550009) is not a valid message-capable Twilio phone number for this destination/account.",
  ],
};
const MAGIC_TO: Record<string, [number, string]> = {
  '+15005550001': [21211, "Invalid 'To' Phone Number: +15005550001"],
  '+15005550002': [
    21612,
    "The 'To' phone number: +15005550002, is not currently reachable using the 'From' phone number via SMS.",
  ],
  '+15005550003': [
    21408,
    "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +15005550003.",
  ],
  '+15005550004': [21610, 'Attempt to send to unsubscribed recipient'],
  '+15005550009': [21614, "'To' number +15005550009 is not a valid mobile number"],
};

/** Twilio's error body: `{code, message, more_info, status}`. */
export function twilioError(reply: FastifyReply, status: number, code: number, message: string): FastifyReply {
  return reply.code(status).send({ code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });
}

const answers: TransportAnswers = {
  rateLimited: (reply, s) =>
    twilioError(s > 0 ? reply.header('retry-after', String(s)) : reply, 429, 20429, 'Too Many Requests'),
  serverError: (reply) => twilioError(reply, 500, 20500, 'Internal Server Error'),
  unavailable: (reply) => twilioError(reply, 503, 20503, 'Service Unavailable'),
};

/** Twilio's dates are RFC 2822 with a numeric zone. */
const rfc2822 = (d: Date) => d.toUTCString().replace('GMT', '+0000');

function basicAuth(header: string | undefined): { user: string; pass: string } | null {
  if (!header?.startsWith('Basic ')) return null;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i < 0 ? null : { user: decoded.slice(0, i), pass: decoded.slice(i + 1) };
}

/** The request carries the account's credentials (HTTP basic auth), and no `auth` fault is set. */
function authenticated(ctx: SimContext, req: FastifyRequest, fault: FaultKind | null): boolean {
  const { accountSid, authToken } = ctx.opts.twilio;
  const creds = basicAuth(req.headers.authorization);
  return fault !== 'auth' && creds?.user === accountSid && creds.pass === authToken;
}

/** Fake `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, strict as Twilio about what it requires. */
export function registerTwilioRoutes(app: FastifyInstance, ctx: SimContext): void {
  app.post<{ Params: { AccountSid: string } }>(
    `/${API_VERSION}/Accounts/:AccountSid/Messages.json`,
    async (req: FastifyRequest<{ Params: { AccountSid: string } }>, reply) => {
      const fault = await preflight(ctx, 'twilio', reply, answers);
      if (fault === 'handled') return reply;
      if (!authenticated(ctx, req, fault)) return twilioError(reply, 401, 20003, 'Authenticate');
      const { accountSid } = ctx.opts.twilio;
      if (req.params.AccountSid !== accountSid) {
        return twilioError(reply, 404, 20404, `The requested resource ${req.url} was not found`);
      }
      // Twilio reads form fields only: a JSON body is as good as none.
      const isForm = req.headers['content-type']?.startsWith('application/x-www-form-urlencoded') ?? false;
      const form = (isForm ? req.body : {}) as Record<string, string | string[] | undefined>;
      const field = (name: string) => {
        const v = form[name];
        return (Array.isArray(v) ? v[0] : v) || undefined;
      };
      const to = field('To');
      const from = field('From');
      const serviceSid = field('MessagingServiceSid');
      const body = field('Body');
      const statusCallback = field('StatusCallback');
      const validity = field('ValidityPeriod');

      if (!to) return twilioError(reply, 400, 21604, "A 'To' phone number is required.");
      if (!E164.test(to) || fault === 'invalid_number')
        return twilioError(reply, 400, 21211, `Invalid 'To' Phone Number: ${to}`);
      if (!from && !serviceSid) return twilioError(reply, 400, 21603, "A 'From' phone number is required.");
      if (serviceSid && !/^MG[0-9a-fA-F]{32}$/.test(serviceSid)) {
        return twilioError(reply, 400, 21705, 'The Messaging Service is invalid');
      }
      if (from && !E164.test(from) && !OTHER_SENDER.test(from)) {
        return twilioError(
          reply,
          400,
          21212,
          `The 'From' number ${from} is not a valid phone number, shortcode, or alphanumeric sender ID.`,
        );
      }
      if (!body) return twilioError(reply, 400, 21602, 'Message body is required.');
      if (body.length > 1600) {
        return twilioError(reply, 400, 21617, 'The concatenated message body exceeds the 1600 character limit.');
      }
      if (validity !== undefined && !(/^\d+$/.test(validity) && Number(validity) >= 1 && Number(validity) <= 36000)) {
        return twilioError(reply, 400, 21624, 'Invalid validity period value');
      }
      if (statusCallback !== undefined && !/^https?:\/\/[^\s/]+/.test(statusCallback)) {
        return twilioError(reply, 400, 21609, 'Invalid StatusCallback url');
      }
      const magic = (from && MAGIC_FROM[from]) || MAGIC_TO[to];
      if (magic) return twilioError(reply, 400, magic[0], magic[1]);
      if (fault === 'bad_sender') {
        return twilioError(
          reply,
          400,
          21606,
          `The 'From' phone number provided (${from ?? serviceSid}) is not a valid message-capable Twilio phone number for this destination/account.`,
        );
      }
      if (fault === 'region') {
        return twilioError(
          reply,
          400,
          21408,
          `Permission to send an SMS has not been enabled for the region indicated by the 'To' number: ${to}.`,
        );
      }
      if (fault === 'opted_out') return twilioError(reply, 400, 21610, 'Attempt to send to unsubscribed recipient');

      const now = new Date();
      const sid = `SM${randomBytes(16).toString('hex')}`;
      const status = from ? 'queued' : 'accepted';
      const message: InboxMessage = {
        messageId: sid,
        provider: 'twilio',
        to,
        from: from ?? null,
        body,
        status,
        errorCode: null,
        requestId: null,
        createdAt: now.toISOString(),
        updatedAt: now.toISOString(),
      };
      ctx.inbox.add(message);
      req.log.info({ sid, to: mask(to) }, 'twilio message accepted');
      const fate =
        fault === 'undelivered' || fault === 'lost_callback' || fault === 'no_final_report'
          ? fault
          : ctx.faults.drawDelivery('twilio');
      const reported = scheduleReports(ctx, message, { statusCallback, serviceSid, fate }, req.log);
      if (fault === 'accepted_timeout') {
        await ctx.timing.sleep(ctx.opts.timeoutHangMs, reply);
        dropConnection(reply, false);
        return reply;
      }
      // the answer waits until the callbacks were posted and answered (at most 10 s: a reset cancels them)
      if (fault === 'reports_first') await Promise.race([reported, ctx.timing.sleep(10_000, reply)]);

      return reply
        .code(201)
        .header('twilio-request-id', `RQ${randomBytes(16).toString('hex')}`)
        .send(messageResource(accountSid, message, serviceSid ?? null));
    },
  );

  /** Fake `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`: the message as it is now, its price included. */
  app.get<{ Params: { AccountSid: string; Sid: string } }>(
    `/${API_VERSION}/Accounts/:AccountSid/Messages/:Sid.json`,
    async (req, reply) => {
      const fault = await preflight(ctx, 'twilio', reply, answers);
      if (fault === 'handled') return reply;
      if (!authenticated(ctx, req, fault)) return twilioError(reply, 401, 20003, 'Authenticate');
      const { accountSid } = ctx.opts.twilio;
      const message = ctx.inbox.find('twilio', req.params.Sid);
      if (req.params.AccountSid !== accountSid || !message) {
        return twilioError(reply, 404, 20404, `The requested resource ${req.url} was not found`);
      }
      return reply.send(messageResource(accountSid, message, null));
    },
  );
}

/** What the simulated Twilio charges per segment, in USD (the message resource's `price` once it went out). */
export const TWILIO_SEGMENT_PRICE = 0.0079;
/** Twilio sets a message's price once it left (sent or later), never while it is queued. */
const PRICED = new Set(['sent', 'delivered', 'undelivered', 'failed']);

/** A message resource as Twilio writes it (the create answer and `GET .../Messages/{Sid}.json`). */
function messageResource(accountSid: string, m: InboxMessage, serviceSid: string | null) {
  const uri = `/${API_VERSION}/Accounts/${accountSid}/Messages/${m.messageId}`;
  const segments = countSegments(m.body);
  return {
    account_sid: accountSid,
    api_version: API_VERSION,
    body: m.body,
    date_created: rfc2822(new Date(m.createdAt)),
    date_sent: PRICED.has(m.status) ? rfc2822(new Date(m.updatedAt)) : null,
    date_updated: rfc2822(new Date(m.updatedAt)),
    direction: 'outbound-api',
    error_code: m.errorCode === null ? null : Number(m.errorCode),
    error_message: null,
    from: m.from,
    messaging_service_sid: serviceSid,
    num_media: '0',
    num_segments: String(segments),
    // a charge: negative, five decimals
    price: PRICED.has(m.status) ? (-TWILIO_SEGMENT_PRICE * segments).toFixed(5) : null,
    price_unit: 'USD',
    sid: m.messageId,
    status: m.status,
    subresource_uris: { media: `${uri}/Media.json` },
    to: m.to,
    uri: `${uri}.json`,
  };
}
