import type { FastifyInstance } from 'fastify';
import { parseFaultPatch } from './faults.js';
import type { SimContext } from './sim.context.js';
import { isSimProvider } from './sim.options.js';

/**
 * The simulator's own API, for people and tests:
 * - `GET /_sim/faults`: both providers' fault settings;
 * - `PUT /_sim/faults/{provider}`: merges a partial FaultSettings (JSON), answers the result;
 * - `POST /_sim/reset`: empties the inbox, forgets Octopush request ids, cancels pending delivery
 *   reports and puts the faults back to their start-up values (the SIM_* variables; none by default);
 * - `GET /_sim/inbox.json?phone=&provider=`: messages received, oldest first.
 */
export function registerControlRoutes(app: FastifyInstance, ctx: SimContext): void {
  app.get('/_sim/faults', async () => ctx.faults.all());

  app.put<{ Params: { provider: string } }>('/_sim/faults/:provider', async (req, reply) => {
    const { provider } = req.params;
    if (!isSimProvider(provider)) return reply.code(404).send({ error: `unknown provider "${provider}"` });
    const parsed = parseFaultPatch(provider, req.body);
    if (!parsed.ok) return reply.code(400).send({ error: 'invalid fault settings', problems: parsed.problems });
    const settings = ctx.faults.update(provider, parsed.patch);
    req.log.info({ provider, patch: parsed.patch }, 'faults changed');
    return settings;
  });

  app.post('/_sim/reset', async (req) => {
    ctx.inbox.clear();
    ctx.octopushRequests.clear();
    ctx.timing.cancelTimers();
    ctx.faults.reset();
    req.log.info('simulator reset');
    return { ok: true };
  });

  app.get<{ Querystring: { phone?: string; provider?: string } }>('/_sim/inbox.json', async (req, reply) => {
    const { phone, provider } = req.query;
    if (provider !== undefined && !isSimProvider(provider)) {
      return reply.code(400).send({ error: `unknown provider "${provider}"` });
    }
    return ctx.inbox.list({ phone, provider });
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
}
