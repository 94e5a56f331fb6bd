import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { OTP_ID_PATTERN } from '@otp-gateway/core';
import { notFound, type OtpService } from '@otp-gateway/service';
import type { ApiMetrics } from './metrics.js';
import {
  errors,
  IdParams,
  OtpReply,
  SendBody,
  SendHeaders,
  SendReply,
  StatusQuery,
  VerifyBody,
  VerifyReply,
} from './otp.schemas.js';

export interface OtpRoutesOptions {
  readonly service: OtpService;
  readonly metrics: ApiMetrics;
  readonly authenticate: (req: import('fastify').FastifyRequest) => string;
}

const security = [{ bearerAuth: [] }];

/** The /v1/otp routes: parse, authenticate, call the OTP service, answer. */
export const otpRoutes: FastifyPluginAsyncTypebox<OtpRoutesOptions> = async (
  app,
  { service, metrics, authenticate },
) => {
  app.decorateRequest('apiKeyName', '');
  app.decorateRequest('otpId', null);
  app.addHook('onRequest', async (req) => {
    req.apiKeyName = authenticate(req);
  });
  const caller = (req: { apiKeyName: string; ip: string }) => ({ keyName: req.apiKeyName, ip: req.ip });

  app.post(
    '/otp/send',
    {
      schema: {
        summary: 'Send a one-time code by SMS',
        tags: ['otp'],
        security,
        body: SendBody,
        headers: SendHeaders,
        response: { 202: SendReply, ...errors },
      },
    },
    async (req, reply) => {
      const answer = await service.send(caller(req), {
        phoneNumber: req.body.phoneNumber,
        locale: req.body.locale,
        metadata: req.body.metadata,
        idempotencyKey: req.headers['idempotency-key'],
      });
      req.otpId = answer.id;
      return reply.code(202).send(answer);
    },
  );

  app.post(
    '/otp/verify',
    {
      schema: {
        summary: 'Check the code the person typed',
        tags: ['otp'],
        security,
        body: VerifyBody,
        response: { 200: VerifyReply, ...errors },
      },
    },
    async (req) => {
      try {
        const r = await service.verify(caller(req), req.body);
        metrics.verifications.inc({ outcome: 'approved' });
        req.otpId = r.id;
        return r;
      } catch (e) {
        metrics.verifications.inc({ outcome: (e as { code?: string }).code ?? 'error' });
        throw e;
      }
    },
  );

  app.get(
    '/otp/status',
    {
      schema: {
        summary: 'The newest OTP of a number under the calling key',
        tags: ['otp'],
        security,
        querystring: StatusQuery,
        response: { 200: OtpReply, ...errors },
      },
    },
    // A `+` left unencoded in a query string arrives as a space: read it back as the + it was.
    async (req) => service.get(caller(req), { by: 'phone', phone: req.query.phoneNumber.replace(/^ (?=\d)/, '+') }),
  );

  app.get(
    '/otp/:id',
    {
      schema: {
        summary: 'One OTP: status, delivery, attempts',
        tags: ['otp'],
        security,
        params: IdParams,
        response: { 200: OtpReply, ...errors },
      },
    },
    async (req) => {
      // never made by the gateway: unknown, as the contract says (nothing to count or read)
      if (!OTP_ID_PATTERN.test(req.params.id)) throw notFound();
      return service.get(caller(req), { by: 'id', id: req.params.id });
    },
  );
};
