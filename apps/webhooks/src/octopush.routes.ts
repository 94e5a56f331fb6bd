import { createHash, timingSafeEqual } from 'node:crypto';
import { maskPhone } from '@otp-gateway/core';
import type { DeliveryReport } from '@otp-gateway/store';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebhookMetrics } from './metrics.js';
import { type RecordDeps, recordReport } from './record-report.js';
import { noteForLog } from './request-log.js';
import { octopushStatusToDelivery } from './status-maps.js';
import { refuse } from './webhook.errors.js';

/** The route; its last segment is OCTOPUSH_WEBHOOK_TOKEN and never reaches a log line (see app.ts). */
export const OCTOPUSH_DELIVERY_PREFIX = '/webhooks/octopush/delivery/';

export interface OctopushRoutesOptions extends RecordDeps {
  /**
   * OCTOPUSH_WEBHOOK_TOKEN and, during a rotation, OCTOPUSH_WEBHOOK_TOKEN_PREVIOUS: either is accepted. None: the
   * route answers 404 not_configured.
   */
  readonly tokens: readonly string[];
  readonly metrics: WebhookMetrics;
}

/**
 * The report's declared shape (JSON or form-encoded alike): ids and statuses of bounded length and alphabet,
 * so nothing a caller invents becomes a long Redis key or a log line of any size. Unknown fields are allowed
 * (Octopush may add some) and ignored.
 */
export const OCTOPUSH_REPORT_SCHEMA = {
  type: 'object',
  required: ['message_id', 'status'],
  properties: {
    message_id: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$' },
    status: { type: 'string', pattern: '^[A-Za-z_]{1,40}$' },
    number: { type: 'string', pattern: '^\\+?[0-9]{6,16}$' },
    delivery_date: { type: 'string', maxLength: 40 },
  },
} as const;

interface OctopushReportBody {
  message_id: string;
  status: string;
  number?: string;
  delivery_date?: string;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time token check: compares SHA-256 digests, so neither content nor length leaks through timing. */
export function tokenMatches(given: string, expected: Buffer): boolean {
  return timingSafeEqual(digest(given), expected);
}

const str = (v: unknown): string | null => (typeof v === 'string' && v.trim() !== '' ? v.trim() : null);

/** Octopush sends `YYYY-MM-DD HH:mm:ss` (UTC) or ISO 8601; anything else is read as "now". */
function reportTime(v: unknown, now: number): number {
  const s = str(v);
  if (!s) return now;
  const t = Date.parse(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(s) ? `${s.replace(' ', 'T')}Z` : s);
  return Number.isFinite(t) ? t : now;
}

/**
 * `POST /webhooks/octopush/delivery/{token}`: Octopush's delivery report, JSON or form-encoded, with `message_id`,
 * `number`, `status`, `delivery_date`. A wrong token is 403 and changes nothing. A status the gateway does not
 * know is answered 200 and logged.
 */
export async function octopushRoutes(app: FastifyInstance, opts: OctopushRoutesOptions): Promise<void> {
  const { metrics } = opts;
  const expected = opts.tokens.map(digest);

  // The token is checked before the body is read: a caller without it gets 403 whatever it sends.
  const authenticate = async (req: FastifyRequest, reply: FastifyReply) => {
    if (expected.length === 0) {
      return refuse(reply, 404, 'not_configured', 'Octopush callbacks are not configured (OCTOPUSH_WEBHOOK_TOKEN)');
    }
    const { token } = req.params as { token: string };
    // every token is compared, so the time taken does not say which one matched
    const matches = expected.map((e) => tokenMatches(token, e));
    if (!matches.includes(true)) {
      metrics.authFailures.inc({ provider: 'octopush' });
      metrics.received.inc({ provider: 'octopush', result: 'forbidden' });
      req.log.warn({ provider: 'octopush' }, 'callback token refused');
      return refuse(reply, 403, 'invalid_token', 'the callback token is not valid');
    }
  };

  app.post<{ Body: OctopushReportBody }>(
    `${OCTOPUSH_DELIVERY_PREFIX}:token`,
    {
      onRequest: authenticate,
      schema: { body: OCTOPUSH_REPORT_SCHEMA, params: { type: 'object', properties: { token: { type: 'string' } } } },
    },
    async (req, reply) => {
      const body = req.body;
      const messageId = body.message_id;
      const providerStatus = body.status;
      const number = str(body.number);
      const status = octopushStatusToDelivery(providerStatus);
      if (!status) {
        metrics.received.inc({ provider: 'octopush', result: 'unknown_status' });
        req.log.warn(
          { provider: 'octopush', messageId, providerStatus, to: number ? maskPhone(number) : null },
          'unknown delivery status ignored',
        );
        return reply.code(200).send({});
      }
      const report: DeliveryReport = {
        provider: 'octopush',
        messageId,
        status,
        providerStatus: providerStatus.toUpperCase(),
        errorCode: null,
        at: reportTime(body.delivery_date, Date.now()),
        phoneNumber: number,
      };
      const result = await recordReport(opts, report, req.log, (fields) => noteForLog(req, fields));
      metrics.received.inc({ provider: 'octopush', result });
      if (result === 'error') return refuse(reply, 503, 'store_unavailable', 'the report could not be recorded');
      return reply.code(200).send({});
    },
  );
}
