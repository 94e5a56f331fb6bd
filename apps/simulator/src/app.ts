import formbody from '@fastify/formbody';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { createCallbackClient } from './callbacks.js';
import { registerControlRoutes } from './control.routes.js';
import { createFaultState } from './faults.js';
import { createInbox } from './inbox.js';
import { registerInboxPage } from './inbox.page.js';
import { octopushError, registerOctopushRoutes } from './octopush.routes.js';
import type { SimContext } from './sim.context.js';
import { resolveSimulatorOptions, type SimulatorInput } from './sim.options.js';
import { createTiming } from './timing.js';
import { registerTwilioRoutes, twilioError } from './twilio.routes.js';

/**
 * Builds the simulator (fake Twilio and Octopush, fault injection, inbox) without listening.
 * Closing it releases hanging requests and cancels pending delivery reports.
 */
export async function buildSimulator(input: SimulatorInput = {}): Promise<FastifyInstance> {
  const opts = resolveSimulatorOptions(input);
  // Force-closing connections at close: a client's idle keep-alive sockets must not hold a test open.
  const app = Fastify({
    logger: opts.logger,
    forceCloseConnections: true,
    // One line per request (below), not Fastify's two: a message's own line (accepted, its id) says the rest.
    logController: new LogController({ disableRequestLogging: true }),
  });
  const ctx: SimContext = {
    opts,
    faults: createFaultState(opts.faults, opts.random),
    inbox: createInbox(opts.inboxLimit),
    timing: createTiming(),
    callbacks: createCallbackClient(),
    octopushRequests: new Map(),
  };
  app.addHook('preClose', async () => {
    ctx.timing.closeAll();
    ctx.callbacks.close();
  });
  // Answers other than 2xx (faults, refusals) at info; the routine ones at debug.
  app.addHook('onResponse', async (req, reply) => {
    // the same fields as the gateway's apps' request lines
    const line = {
      req,
      res: { statusCode: reply.statusCode },
      responseTime: Math.round(reply.elapsedTime * 10) / 10,
    };
    if (reply.statusCode >= 300) req.log.info(line, 'request completed');
    else req.log.debug(line, 'request completed');
  });
  await app.register(formbody);

  // Errors and unknown routes, worded as the vendor whose path was asked.
  app.setNotFoundHandler((req, reply) => vendorError(req, reply, 404, 'not found'));
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, 'simulator error');
    return vendorError(req, reply, status, err.message);
  });

  registerTwilioRoutes(app, ctx);
  registerOctopushRoutes(app, ctx);
  registerControlRoutes(app, ctx);
  registerInboxPage(app, ctx);
  return app;
}

function vendorError(req: FastifyRequest, reply: FastifyReply, status: number, message: string): FastifyReply {
  if (req.url.startsWith('/2010-04-01/')) {
    if (status === 404)
      return twilioError(reply, 404, 20404, `The requested resource ${req.url.split('?')[0]} was not found`);
    // Twilio has no code of its own for a body it cannot read: the HTTP status stands in.
    return twilioError(reply, status, status >= 500 ? 20500 : status, message);
  }
  if (req.url.startsWith('/v1/public/')) return octopushError(reply, status, status >= 500 ? 500 : 100, message);
  return reply.code(status).send({ error: message });
}
