import { createHash, timingSafeEqual } from 'node:crypto';
import { maskPhone } from '@otp-gateway/core';
import type { DeliveryReport } from '@otp-gateway/store';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebhookMetrics } from './metrics.js';
import { type RecordDeps, recordReport } from './record-report.js';
import { octopushStatusToDelivery } from './status-maps.js';
import { refuse } from './webhook.errors.js';

/** The route; its last segment is OCTOPUSH_WEBHOOK_TOKEN and never reaches a log line (see app.ts). */
export const OCTOPUSH_DELIVERY_PREFIX = '/webhooks/octopush/delivery/';

export interface OctopushRoutesOptions extends RecordDeps {
  /** OCTOPUSH_WEBHOOK_TOKEN; null: the route answers 404 not_configured. */
  readonly token: string | null;
  readonly metrics: WebhookMetrics;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time token check: compares SHA-256 digests, so neither content nor length leaks through timing. */
export function tokenMatches(given: string, expected: Buffer): boolean {
  return timingSafeEqual(digest(given), expected);
}

const str = (v: unknown): string | null =>
  typeof v === 'string' && v.trim() !== '' ? v.trim() : typeof v === 'number' ? String(v) : null;

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
  const expected = opts.token ? digest(opts.token) : null;

  // The token is checked before the body is read: a caller without it gets 403 whatever it sends.
  const authenticate = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!expected) {
      return refuse(reply, 404, 'not_configured', 'Octopush callbacks are not configured (OCTOPUSH_WEBHOOK_TOKEN)');
    }
    const { token } = req.params as { token: string };
    if (!tokenMatches(token, expected)) {
      metrics.authFailures.inc({ provider: 'octopush' });
      metrics.received.inc({ provider: 'octopush', result: 'forbidden' });
      req.log.warn({ provider: 'octopush' }, 'callback token refused');
      return refuse(reply, 403, 'invalid_token', 'the callback token is not valid');
    }
  };

  app.post(`${OCTOPUSH_DELIVERY_PREFIX}:token`, { onRequest: authenticate }, async (req, reply) => {
    const body = req.body && typeof req.body === 'object' ? (req.body as Record<string, unknown>) : {};
    const messageId = str(body.message_id);
    const providerStatus = str(body.status);
    if (!messageId || !providerStatus) {
      metrics.received.inc({ provider: 'octopush', result: 'invalid' });
      return refuse(reply, 400, 'invalid_request', 'message_id and status are required');
    }
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
    };
    const result = await recordReport(opts, report, req.log);
    metrics.received.inc({ provider: 'octopush', result });
    if (result === 'error') return refuse(reply, 503, 'store_unavailable', 'the report could not be recorded');
    return reply.code(200).send({});
  });
}
