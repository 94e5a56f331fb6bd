import basicAuth from '@fastify/basic-auth';
import { type Config, fastifyTrustProxy, logFormat, metricsAuthorizer } from '@otp-gateway/core';
import { type RedisClient, redisAnswers, type SendGuards } from '@otp-gateway/store';
import type { Queue } from 'bullmq';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, LogController } from 'fastify';
import type { LoggerOptions } from 'pino';
import { createCredentialCheck } from './auth.js';
import { BOARD_PATH, bullBoardPlugin, DESTRUCTIVE_BOARD_ROUTES, REFUSED_BOARD_ROUTES } from './board.js';
import { GUARDS_PATH, guardsPage } from './guards.page.js';
import { createLoginThrottle } from './login-throttle.js';
import { createDashboardMetrics, type DashboardMetrics } from './metrics.js';

export { BOARD_PATH } from './board.js';

export interface DashboardDeps {
  readonly config: Config;
  /** The connection /readyz pings. */
  readonly redis: RedisClient;
  /** Every queue of the gateway (each send queue shard); opened and closed by the caller. */
  readonly queues: readonly Queue[];
  /** A pino logger; none: no logs. */
  readonly logger?: FastifyBaseLogger;
  readonly metrics?: DashboardMetrics;
  /** The abuse guards: their page lists active blocks and lifts them. Absent: no page. */
  readonly guards?: SendGuards;
}

/** pino options of the dashboard: JSON lines, credentials redacted. */
export function dashboardLoggerOptions(config: Config): LoggerOptions {
  return {
    level: config.logLevel,
    ...logFormat(config),
    base: { app: 'dashboard', pid: process.pid },
    redact: { paths: ['req.headers.authorization', 'headers.authorization'], censor: '[redacted]' },
  };
}

const errorBody = (code: string, message: string) => ({ error: { code, message } });

/**
 * Sent with every answer: the board may not be framed (clickjacking), scripts and styles come from the dashboard
 * itself (Bull Board's page has inline ones), and nothing is sniffed or leaked through the Referer.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-frame-options': 'DENY',
  'content-security-policy':
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/**
 * Builds the dashboard without listening: Bull Board at /admin/queues behind HTTP basic auth
 * (DASHBOARD_USER, DASHBOARD_PASSWORD), and /healthz, /readyz, /metrics open as on the other processes.
 */
export async function buildDashboard(deps: DashboardDeps): Promise<FastifyInstance> {
  const { config, redis, queues } = deps;
  const { user, password } = config.dashboard;
  if (!user || !password) throw new Error('the dashboard needs DASHBOARD_USER and DASHBOARD_PASSWORD');
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    // Bull Board polls every few seconds: requests are logged below, refusals and failures only.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    trustProxy: fastifyTrustProxy(config),
  });
  const metrics =
    deps.metrics ??
    createDashboardMetrics(queues, {
      onError: (err) =>
        app.log.warn({ reason: err instanceof Error ? err.message : String(err) }, 'queue metrics unavailable'),
    });

  app.addHook('onSend', async (_req, reply) => {
    reply.headers(SECURITY_HEADERS);
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = err.statusCode ?? 500;
    if (status < 500) return reply.code(status).send(errorBody('invalid_request', err.message));
    req.log.error({ err: { type: err.name, message: err.message } }, 'request failed');
    return reply.code(500).send(errorBody('internal_error', 'internal error'));
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send(errorBody('not_found', `no route ${req.method} ${req.url.split('?')[0]}`)),
  );
  app.addHook('onResponse', async (req, reply) => {
    const fields = { method: req.method, url: req.url.split('?')[0], status: reply.statusCode, remoteAddress: req.ip };
    const user = (req as { dashboardUser?: string }).dashboardUser;
    if (reply.statusCode === 401) req.log.warn(fields, 'dashboard login refused');
    else if (reply.statusCode === 429) req.log.warn(fields, 'dashboard login throttled');
    else if (req.method !== 'GET' && req.method !== 'HEAD' && req.url.startsWith('/admin/')) {
      // an operator action (the board's, a guard lift), whatever became of it: who did what to which queue or job
      // (a lift that went through has its own line, with the block: onLift below)
      const params = req.params as { queueName?: string; jobId?: string; queueStatus?: string };
      const action = { ...fields, user, route: req.routeOptions.url, queue: params?.queueName, jobId: params?.jobId };
      if (reply.statusCode >= 500) req.log.error(action, 'dashboard operator action failed');
      else if (reply.statusCode >= 400) req.log.info(action, 'dashboard operator action refused');
      else if (!req.url.startsWith(GUARDS_PATH)) req.log.info(action, 'dashboard operator action');
    } else if (reply.statusCode >= 500) req.log.error(fields, 'request failed');
    else req.log.debug(fields, 'request completed');
  });

  app.get('/', async (_req, reply) => reply.redirect(BOARD_PATH));
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (await redisAnswers(redis)) return { status: 'ready' };
    return reply.code(503).send(errorBody('store_unavailable', 'Redis does not answer'));
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

  const check = createCredentialCheck({ user, password });
  const throttle = createLoginThrottle(config.dashboard.loginMaxFailures);
  await app.register(basicAuth, {
    authenticate: { realm: 'otp-gateway dashboard' },
    validate: async (u, p, req) => {
      if (!check(u, p)) {
        throttle.failed(req.ip);
        throw Object.assign(new Error('wrong dashboard user or password'), { statusCode: 401 });
      }
      (req as { dashboardUser?: string }).dashboardUser = u;
    },
  });
  await app.register(async (scope) => {
    // Every route of the board, its pages, assets and API, asks for the credentials first.
    scope.addHook('onRequest', (req, reply, done) => {
      const wait = throttle.blockedFor(req.ip);
      if (wait > 0) {
        void reply
          .code(429)
          .header('retry-after', String(Math.ceil(wait / 1000)))
          .send(errorBody('too_many_failed_logins', 'too many failed logins from this address; try again later'));
        return;
      }
      app.basicAuth(req, reply, (err) => {
        if (err) {
          void reply.code(401).send(errorBody('unauthorized', 'dashboard credentials required (HTTP basic auth)'));
          return;
        }
        if (REFUSED_BOARD_ROUTES.has(`${req.method} ${req.routeOptions.url}`)) {
          void reply
            .code(403)
            .send(errorBody('forbidden', 'the dashboard does not add jobs or edit job data; retry the job instead'));
          return;
        }
        if (
          !config.dashboard.allowDestructive &&
          DESTRUCTIVE_BOARD_ROUTES.has(`${req.method} ${req.routeOptions.url}`)
        ) {
          void reply
            .code(403)
            .send(
              errorBody(
                'forbidden',
                'destructive board actions (obliterate, clean, empty, pause, ...) are off: DASHBOARD_ALLOW_DESTRUCTIVE_ACTIONS',
              ),
            );
          return;
        }
        done();
      });
    });
    await scope.register(bullBoardPlugin(queues), { prefix: BOARD_PATH });
    if (deps.guards) {
      const guards = deps.guards;
      await scope.register(async (s) =>
        guardsPage(s, {
          guards,
          onLift: (id, lifted, req) =>
            req.log.info(
              { user: (req as { dashboardUser?: string }).dashboardUser, block: id, lifted, url: GUARDS_PATH },
              'dashboard operator lifted a guard block',
            ),
        }),
      );
    }
  });
  return app;
}
