import { createServer, type Server } from 'node:http';
import { metricsAuthorizer } from '@otp-gateway/core';
import type { Registry } from 'prom-client';

/** A small HTTP port for the worker: /healthz, /readyz (Redis answers), /metrics. */
export function startHealthServer(opts: {
  port: number;
  host: string;
  registry: Registry;
  ready: () => Promise<boolean>;
  /** METRICS_TOKEN: /metrics asks for it as a Bearer token when set. */
  metricsToken?: string | null;
}): Promise<Server> {
  const authorized = metricsAuthorizer(opts.metricsToken ?? null);
  const server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (path === '/healthz') return json(200, { status: 'ok' });
    if (path === '/readyz') {
      const ok = await opts.ready().catch(() => false);
      return ok
        ? json(200, { status: 'ready' })
        : json(503, { error: { code: 'store_unavailable', message: 'Redis does not answer' } });
    }
    if (path === '/metrics') {
      if (!authorized(req.headers.authorization)) {
        return json(401, { error: { code: 'unauthorized', message: 'METRICS_TOKEN required as a Bearer token' } });
      }
      res.writeHead(200, { 'content-type': opts.registry.contentType });
      return res.end(await opts.registry.metrics());
    }
    return json(404, { error: { code: 'not_found', message: 'no such route' } });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve(server));
  });
}
