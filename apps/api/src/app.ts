import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { type TypeBoxTypeProvider, TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import {
  type Config,
  fastifyTrustProxy,
  GUARD_REFUSALS,
  isGatewayError,
  logFormat,
  maskPhone,
  metricsAuthorizer,
  requestLine,
} from '@otp-gateway/core';
import type { OtpService } from '@otp-gateway/service';
import { type RedisClient, redisAllAnswer } from '@otp-gateway/store';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify';
import { createAuthenticator } from './auth.js';
import { type ApiMetrics, createApiMetrics } from './metrics.js';
import { otpRoutes } from './otp.routes.js';
import { ErrorBody } from './otp.schemas.js';

export interface ApiDeps {
  readonly config: Config;
  readonly service: OtpService;
  /**
   * Every connection the process opened (main.ts: the store's, BullMQ's, the replica check's behind Sentinel):
   * /readyz is ready when each answers.
   */
  readonly connections: readonly RedisClient[];
  readonly logger?: FastifyServerOptions['logger'] | false;
  readonly metrics?: ApiMetrics;
  /** The API keys as they stand (SHA-256 of the secret → name), when they can change (TENANTS_FILE); else API_KEYS. */
  readonly keys?: () => ReadonlyMap<string, string>;
}

const safeDecode = (v: string): string => {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
};

/**
 * A URL as it may be logged: the path, and each query parameter's name with its value masked (a phone number
 * by maskPhone, anything else replaced): a caller may put a key or a code in a query string by mistake.
 */
export function loggableApiUrl(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return url;
  const masked = url
    .slice(q + 1)
    .split('&')
    .filter(Boolean)
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = (eq === -1 ? pair : pair.slice(0, eq)).slice(0, 64);
      if (eq === -1) return name;
      const value = pair.slice(eq + 1);
      return `${name}=${name.toLowerCase() === 'phonenumber' ? maskPhone(safeDecode(value)) : '***'}`;
    });
  return `${url.slice(0, q)}?${masked.join('&')}`;
}

/** Log options shared by the HTTP apps: JSON lines, secrets redacted, query strings masked. */
export function apiLoggerOptions(config: Config): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    ...logFormat(config),
    redact: { paths: ['req.headers.authorization', 'req.headers["idempotency-key"]'], censor: '[redacted]' },
    serializers: {
      req: (req: { method: string; url: string; ip?: string; id?: string }) => ({
        method: req.method,
        url: loggableApiUrl(req.url),
        remoteAddress: req.ip,
      }),
    },
  };
}

/** Builds the API without listening: tests use inject(), main.ts listens. */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const { config, service } = deps;
  const metrics = deps.metrics ?? createApiMetrics();
  const app = Fastify({
    logger: deps.logger === undefined ? apiLoggerOptions(config) : deps.logger,
    trustProxy: fastifyTrustProxy(config),
    bodyLimit: 16 * 1024,
    requestIdHeader: 'x-request-id',
    // a path segment up to 256 characters reaches its route (GET /v1/otp/{id}: any malformed id is otp_not_found)
    routerOptions: { maxParamLength: 256 },
    // One log line per request (below) instead of Fastify's two, with the OTP it concerns.
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  app.addSchema(ErrorBody);

  app.addHook('onResponse', async (req, reply) => {
    const otpId = (req as { otpId?: string | null }).otpId;
    req.log.info({ ...requestLine(req, reply), ...(otpId ? { otpId } : {}) }, 'request completed');
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (isGatewayError(err)) {
      if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
      if (err.statusCode === 401) reply.header('www-authenticate', 'Bearer');
      const guarded = GUARD_REFUSALS.has(err.code);
      // refused requests: bad input (every 400: a malformed number or code, metadata), auth, limits, the guards, a
      // reused Idempotency-Key. A code refused by verify (wrong, expired...) is a verification outcome, counted there.
      const refused =
        err.statusCode === 400 ||
        err.statusCode === 401 ||
        err.statusCode === 429 ||
        guarded ||
        err.code === 'idempotency_key_reused';
      if (refused) metrics.refusals.inc({ code: err.code });
      // a guard's refusal names the guard and why: operators see abuse (and false positives) in the logs
      if (guarded) req.log.warn({ code: err.code, reason: err.message }, 'send refused by an abuse guard');
      return reply.code(err.statusCode).send({ error: { code: err.code, message: err.message }, ...err.details });
    }
    if (err.validation) {
      metrics.refusals.inc({ code: 'invalid_request' });
      return reply.code(400).send({ error: { code: 'invalid_request', message: err.message } });
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = status === 415 ? 'unsupported_media_type' : status === 413 ? 'body_too_large' : 'invalid_request';
      metrics.refusals.inc({ code });
      return reply.code(status).send({ error: { code, message: err.message } });
    }
    req.log.error({ err: { type: err.name, message: err.message, stack: err.stack } }, 'request failed');
    return reply.code(500).send({ error: { code: 'internal_error', message: 'internal error' } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }),
  );

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'SMS OTP gateway',
        version: '1.0.0',
        description:
          'Send one-time codes by SMS (Twilio, Octopush, with failover) and check them. Authenticate with `Authorization: Bearer <API key>`.',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
    },
    refResolver: { buildLocalReference: (json, _url, _frag, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    if (await redisAllAnswer(deps.connections)) return { status: 'ready' };
    return reply.code(503).send({ error: { code: 'store_unavailable', message: 'Redis does not answer' } });
  });
  const metricsAuthorized = metricsAuthorizer(config.metricsToken);
  app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
    if (!metricsAuthorized(req.headers.authorization)) {
      return reply
        .code(401)
        .send({ error: { code: 'unauthorized', message: 'METRICS_TOKEN required as a Bearer token' } });
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  await app.register(otpRoutes, {
    prefix: '/v1',
    service,
    metrics,
    authenticate: createAuthenticator(deps.keys ?? config.api.keys),
  });
  return app;
}
