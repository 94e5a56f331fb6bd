import { requestLine } from '@otp-gateway/core';
import type { FastifyReply, FastifyRequest } from 'fastify';

const NOTE = Symbol('log fields');
type Noted = FastifyRequest & { [NOTE]?: Record<string, unknown> };

/**
 * Adds fields to the request's one log line (a report's outcome: its OTP, attempt, status). When the caller has
 * already gone, no answer will be sent and Fastify writes no response line: the line is written now.
 */
export function noteForLog(req: FastifyRequest, fields: Record<string, unknown>): void {
  const r = req as Noted;
  r[NOTE] = { ...r[NOTE], ...fields };
  if (req.raw.socket?.destroyed) req.log.info({ req, ...r[NOTE], callerGone: true }, 'request completed');
}

/**
 * One line per request, written when the answer is sent: method, redacted URL, client address (the `req`
 * serializer), status, time taken, and what the request did (noteForLog). Fastify's own two lines are off
 * (app.ts): at two status callbacks per Twilio message, three lines per callback were the app's largest cost
 * after Redis.
 */
export async function logRequest(req: FastifyRequest, reply: FastifyReply): Promise<void> {
  req.log.info({ ...requestLine(req, reply), ...(req as Noted)[NOTE] }, 'request completed');
}
