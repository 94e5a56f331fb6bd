import type { FastifyReply } from 'fastify';

/** Answers `{"error": {"code", "message"}}`, the gateway's error body. */
export const refuse = (reply: FastifyReply, status: number, code: string, message: string): FastifyReply =>
  reply.code(status).send({ error: { code, message } });
