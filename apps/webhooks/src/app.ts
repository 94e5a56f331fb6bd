import formbody from '@fastify/formbody';
import { type Config, fastifyTrustProxy, logFormat, metricsAuthorizer } from '@otp-gateway/core';
import {
  type AddressLimiter,
  type RedisClient,
  type ReportRepo,
  redisAllAnswer,
  type SendQueues,
} from '@otp-gateway/store';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify';
import { createWebhookMetrics, type WebhookMetrics } from './metrics.js';
import { OCTOPUSH_DELIVERY_PREFIX, octopushRoutes } from './octopush.routes.js';
import { type RecordPatience, recordPatience } from './record-report.js';
import { logRequest } from './request-log.js';
import { twilioRoutes } from './twilio.routes.js';
import { refuse } from './webhook.errors.js';

/** The answers that count against the address that got them (see AddressLimiter): its request was refused. */
const REFUSALS = new Set([400, 401, 403, 404, 405, 413, 415]);

export interface WebhooksDeps {
  readonly config: Config;
  readonly reports: ReportRepo;
  /** Where resends go. */
  readonly queues: SendQueues;
  /** Every connection the process opened (main.ts: the store's, BullMQ's): /readyz is ready when each answers. */
  readonly connections: readonly RedisClient[];
  readonly logger?: FastifyServerOptions['logger'] | false;
  readonly metrics?: WebhookMetrics;
  /** Counts callback requests per client address (WEBHOOKS_RATE_LIMIT_PER_IP_PER_MINUTE); none: no limit. */
  readonly limiter?: AddressLimiter;
  /** How a report waits out a store that refuses it; by default recordPatience()'s. */
  readonly patience?: RecordPatience;
}

const providerOf = (url: string) => (url.startsWith(OCTOPUSH_DELIVERY_PREFIX) ? 'octopush' : 'twilio');

const TOKEN_SEGMENT = new RegExp(`(${OCTOPUSH_DELIVERY_PREFIX.replaceAll('/', '\\/')})[^/?#]*`);

/** A URL as it may be logged: the Octopush token segment replaced. */
export const loggableUrl = (url: string): string => url.replace(TOKEN_SEGMENT, '$1[redacted]');

/** Log options: JSON lines; no token, signature or credential; only method, redacted URL and client address. */
export function webhooksLoggerOptions(config: Config): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    ...logFormat(config),
    serializers: {
      req: (req: { method: string; url: string; ip?: string }) => ({
        method: req.method,
        url: loggableUrl(req.url),
        remoteAddress: req.ip,
      }),
    },
  };
}

/** Builds the callbacks app without listening: tests use inject(), main.ts listens. */
export async function buildWebhooks(deps: WebhooksDeps): Promise<FastifyInstance> {
  const { config } = deps;
  const metrics = deps.metrics ?? createWebhookMetrics();
  const app = Fastify({
    logger: deps.logger === undefined ? webhooksLoggerOptions(config) : deps.logger,
    bodyLimit: 32 * 1024,
    trustProxy: fastifyTrustProxy(config),
    requestIdHeader: 'x-request-id',
    // the token segment of the Octopush route is long and random
    routerOptions: { maxParamLength: 256 },
    // one line per request (logRequest), not Fastify's two
    logController: new LogController({ disableRequestLogging: true }),
  });
  app.addHook('onResponse', logRequest);

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.validation) {
      metrics.received.inc({ provider: providerOf(req.url), result: 'invalid' });
      return refuse(reply, 400, 'invalid_request', err.message);
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = status === 415 ? 'unsupported_media_type' : status === 413 ? 'body_too_large' : 'invalid_request';
      return refuse(reply, status, code, err.message);
    }
    req.log.error({ err: { type: err.name, message: err.message } }, 'request failed');
    return refuse(reply, 500, 'internal_error', 'internal error');
  });
  app.setNotFoundHandler((req, reply) =>
    refuse(reply, 404, 'not_found', `no route ${req.method} ${loggableUrl(req.url.split('?')[0] ?? '')}`),
  );
  await app.register(formbody);

  // A request refused (a wrong token or signature, a malformed body, an unknown path) is counted against its
  // client address, before its answer leaves; past the limit it is answered 429 instead (a token guesser, a
  // scanner). A callback that passes is never counted nor refused by it (see AddressLimiter). A limiter that
  // fails leaves the refusal as it was.
  const { limiter } = deps;
  if (limiter) {
    app.addHook('onSend', async (req, reply, payload) => {
      if (!REFUSALS.has(reply.statusCode) || !req.url.startsWith('/webhooks/')) return payload;
      const limited = await limiter.refused(req.ip).catch(() => null);
      if (!limited) return payload;
      reply.code(429).header('retry-after', String(Math.ceil(limited.retryAfterMs / 1000)));
      return JSON.stringify({
        error: { code: 'rate_limited', message: 'too many refused callbacks from this address' },
      });
    });
  }

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (await redisAllAnswer(deps.connections)) return { status: 'ready' };
    return refuse(reply, 503, 'store_unavailable', 'Redis does not answer');
  });
  const metricsAuthorized = metricsAuthorizer(config.metricsToken);
  app.get('/metrics', async (req, reply) => {
    if (!metricsAuthorized(req.headers.authorization)) {
      return reply
        .code(401)
        .send({ error: { code: 'unauthorized', message: 'METRICS_TOKEN required as a Bearer token' } });
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  const record = { reports: deps.reports, queues: deps.queues, metrics, patience: deps.patience ?? recordPatience() };
  await app.register(twilioRoutes, {
    ...record,
    authToken: config.webhooks.twilioAuthToken,
    publicBaseUrl: config.webhooks.publicBaseUrl,
  });
  await app.register(octopushRoutes, { ...record, tokens: config.webhooks.octopushTokens });
  return app;
}
