import type { FastifyReply } from 'fastify';
import type { CallbackClient } from './callbacks.js';
import type { FaultState } from './faults.js';
import type { Inbox } from './inbox.js';
import type { FaultKind, SimProvider, SimulatorOptions } from './sim.options.js';
import { dropConnection, type Timing } from './timing.js';

/** What every route of the simulator shares. */
export interface SimContext {
  readonly opts: SimulatorOptions;
  readonly faults: FaultState;
  readonly inbox: Inbox;
  readonly timing: Timing;
  /** Sends the delivery reports (closed with the app). */
  readonly callbacks: CallbackClient;
  /** Octopush answers by `api-login` + `request_id`, so a repeated request sends nothing. */
  readonly octopushRequests: Map<string, { status: number; body: unknown }>;
}

/** How a vendor words the faults that happen before it reads a request. */
export interface TransportAnswers {
  rateLimited(reply: FastifyReply, retryAfterSeconds: number): FastifyReply;
  serverError(reply: FastifyReply): FastifyReply;
  unavailable(reply: FastifyReply): FastifyReply;
}

/**
 * Applies latency, then the transport faults (timeout, reset, down, 429, 500). Returns `handled` when the
 * request got its answer (or lost its connection), else the fault left for the vendor route to answer
 * (`auth`, `invalid_number`, `undelivered`...), or null.
 */
export async function preflight(
  ctx: SimContext,
  provider: SimProvider,
  reply: FastifyReply,
  answers: TransportAnswers,
): Promise<FaultKind | null | 'handled'> {
  const settings = ctx.faults.get(provider);
  if (!(await ctx.timing.sleep(settings.latencyMs, reply))) {
    dropConnection(reply, false);
    return 'handled';
  }
  const fault = ctx.faults.draw(provider);
  switch (fault) {
    case 'timeout':
      await ctx.timing.sleep(ctx.opts.timeoutHangMs, reply);
      dropConnection(reply, false);
      return 'handled';
    case 'reset':
      dropConnection(reply, true);
      return 'handled';
    case 'down':
      answers.unavailable(reply);
      return 'handled';
    case 'rate_limit':
      answers.rateLimited(reply, settings.retryAfterSeconds);
      return 'handled';
    case 'server_error':
      answers.serverError(reply);
      return 'handled';
    default:
      return fault;
  }
}
