import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply } from 'fastify';
import { type InboxMessage, mask } from './inbox.js';
import { countSegments } from './segments.js';
import { preflight, type SimContext, type TransportAnswers } from './sim.context.js';
import { dropConnection } from './timing.js';

/**
 * Error codes come from Octopush's published return-code table (octopush.com, "return codes"):
 *   101 incorrect login details, 102 text too long, 104 out of credit, 106 bad sender, 107 text missing,
 *   108 login missing, 109 key (password) missing, 110 recipients missing, 112 message type/purpose
 *   invalid, 117 no correct recipient number, 120 same request_id already sent.
 * The table does not give HTTP statuses or codes for throttling and outages; the simulator answers
 * 400 validation, 401 credentials, 402 credit, and for those others `{code: <HTTP status>}` with
 * 429 (+ Retry-After), 500 and 503. Bodies are `{"code": <int>, "message": "..."}`.
 */
export function octopushError(reply: FastifyReply, status: number, code: number, message: string): FastifyReply {
  return reply.code(status).send({ code, message });
}

const answers: TransportAnswers = {
  rateLimited: (reply, s) =>
    octopushError(s > 0 ? reply.header('retry-after', String(s)) : reply, 429, 429, 'Too many requests'),
  serverError: (reply) => octopushError(reply, 500, 500, 'Internal server error'),
  unavailable: (reply) => octopushError(reply, 503, 503, 'Service unavailable'),
};

const E164 = /^\+[1-9]\d{6,14}$/;
const SENDER = /^[A-Za-z0-9]{3,11}$/;
const UNIT_PRICE = 0.045;

interface SendBody {
  recipients?: unknown;
  text?: unknown;
  type?: unknown;
  purpose?: unknown;
  sender?: unknown;
  request_id?: unknown;
}

/** Octopush's delivery dates: "Y-m-d H:i:s". */
const octoDate = (d: Date) => d.toISOString().slice(0, 19).replace('T', ' ');

/** Fake `POST /v1/public/sms-campaign/send`: headers `api-key`, `api-login`, a JSON campaign of one text. */
export function registerOctopushRoutes(app: FastifyInstance, ctx: SimContext): void {
  app.post('/v1/public/sms-campaign/send', async (req, reply) => {
    const fault = await preflight(ctx, 'octopush', reply, answers);
    if (fault === 'handled') return reply;
    const login = req.headers['api-login'];
    const key = req.headers['api-key'];
    if (!login) return octopushError(reply, 401, 108, 'You have not entered your login details (api-login header).');
    if (!key) return octopushError(reply, 401, 109, 'You have not entered your API key (api-key header).');
    if (fault === 'auth' || login !== ctx.opts.octopush.apiLogin || key !== ctx.opts.octopush.apiKey) {
      return octopushError(reply, 401, 101, 'Incorrect login details.');
    }
    if (fault === 'no_credit') return octopushError(reply, 402, 104, 'You have run out of credit.');

    const isJson = req.headers['content-type']?.startsWith('application/json') ?? false;
    if (!isJson || !req.body || typeof req.body !== 'object' || Array.isArray(req.body)) {
      return octopushError(
        reply,
        400,
        100,
        'POST request missing: send a JSON object (Content-Type: application/json).',
      );
    }
    const b = req.body as SendBody;
    if (typeof b.text !== 'string' || b.text.length === 0)
      return octopushError(reply, 400, 107, 'The text of your message is missing.');
    if (b.text.length > 1224) return octopushError(reply, 400, 102, 'Your text exceeds 1224 characters.');
    if (!Array.isArray(b.recipients) || b.recipients.length === 0) {
      return octopushError(reply, 400, 110, 'You have not entered the list of recipients.');
    }
    if (b.type !== 'sms_premium' && b.type !== 'sms_low_cost') {
      return octopushError(reply, 400, 112, 'type must be "sms_premium" or "sms_low_cost".');
    }
    if (b.purpose !== undefined && b.purpose !== 'alert' && b.purpose !== 'wholesale') {
      return octopushError(reply, 400, 112, 'purpose must be "alert" or "wholesale".');
    }
    if (
      (b.sender !== undefined && (typeof b.sender !== 'string' || !SENDER.test(b.sender))) ||
      fault === 'bad_sender'
    ) {
      return octopushError(reply, 400, 106, 'Invalid sender: 3 to 11 characters, chosen from 0 to 9, a to z, A to Z.');
    }
    if (b.request_id !== undefined && (typeof b.request_id !== 'string' || b.request_id.length > 255)) {
      return octopushError(reply, 400, 100, 'request_id must be a string of at most 255 characters.');
    }
    const phones = (b.recipients as { phone_number?: unknown }[])
      .map((r) => r?.phone_number)
      .filter((p): p is string => typeof p === 'string' && E164.test(p));
    if (phones.length === 0 || fault === 'invalid_number') {
      return octopushError(
        reply,
        400,
        117,
        'Your recipient list contains no correct numbers (international format, e.g. +33600000000).',
      );
    }

    // Checked and recorded in one turn of the event loop, so concurrent repeats cannot both send.
    const dedupKey = typeof b.request_id === 'string' ? `${login}\u0000${b.request_id}` : null;
    const first = dedupKey ? ctx.octopushRequests.get(dedupKey) : undefined;
    if (first) {
      req.log.info({ requestId: b.request_id }, 'octopush repeated request_id, nothing sent');
      if (ctx.opts.octopush.duplicateRequest === 'reject') {
        return octopushError(reply, 400, 120, 'A SMS with the same request_id has already been sent.');
      }
      return reply.code(first.status).send(first.body);
    }

    const ticket = `sms_${randomBytes(12).toString('hex')}`;
    const now = new Date().toISOString();
    const segments = countSegments(b.text);
    for (const to of phones) {
      const m: InboxMessage = {
        messageId: ticket,
        provider: 'octopush',
        to,
        from: typeof b.sender === 'string' ? b.sender : null,
        body: b.text,
        status: 'SENT',
        errorCode: null,
        requestId: typeof b.request_id === 'string' ? b.request_id : null,
        createdAt: now,
        updatedAt: now,
      };
      ctx.inbox.add(m);
      const fate =
        fault === 'undelivered' || fault === 'lost_callback' || fault === 'opted_out' || fault === 'no_final_report'
          ? fault
          : ctx.faults.drawDelivery('octopush');
      scheduleReport(ctx, m, fate, req.log);
    }
    req.log.info({ ticket, to: phones.map(mask) }, 'octopush campaign accepted');
    const body = {
      sms_ticket: ticket,
      number_of_contacts: phones.length,
      total_cost: Math.round(UNIT_PRICE * segments * phones.length * 10000) / 10000,
      number_of_sms_needed: segments,
      residual_credit: 1000,
    };
    if (dedupKey) {
      ctx.octopushRequests.set(dedupKey, { status: 201, body });
      if (ctx.octopushRequests.size > ctx.opts.inboxLimit) {
        const oldest = ctx.octopushRequests.keys().next().value;
        if (oldest !== undefined) ctx.octopushRequests.delete(oldest);
      }
    }
    if (fault === 'accepted_timeout') {
      // sent, and its request id taken; the caller never learns it (a repeat of the request id then meets it)
      await ctx.timing.sleep(ctx.opts.timeoutHangMs, reply);
      dropConnection(reply, false);
      return reply;
    }
    return reply.code(201).send(body);
  });
}

/** After the delay, sets the final status and POSTs it (JSON) to the configured callback URL. */
function scheduleReport(
  ctx: SimContext,
  m: InboxMessage,
  fate: 'delivered' | 'undelivered' | 'lost_callback' | 'opted_out' | 'no_final_report',
  log: FastifyBaseLogger,
): void {
  const status = {
    delivered: 'DELIVERED',
    undelivered: 'NOT_DELIVERED',
    lost_callback: 'DELIVERED',
    opted_out: 'BLACKLISTED_NUMBER',
    no_final_report: 'UNKNOWN_DELIVERY',
  }[fate];
  ctx.timing.later(ctx.faults.get('octopush').callbackDelayMs, () => {
    if (!ctx.inbox.setStatus('octopush', m.messageId, m.to, status)) return;
    const url = ctx.opts.octopush.callbackUrl;
    if (!url || fate === 'lost_callback') return;
    const report = {
      channel: 'sms',
      message_id: m.messageId,
      number: m.to,
      status,
      delivery_date: octoDate(new Date()),
      meta_data: {},
    };
    void ctx.callbacks.post(url, { json: report }, {}, log);
  });
}
