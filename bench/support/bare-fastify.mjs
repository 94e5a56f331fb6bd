// Baseline server: bare Fastify 5 (the API's own copy), no logger, no plugins, no Redis. Its routes parse the
// same JSON bodies as the gateway's and answer like it, so a ratio against it isolates what the gateway adds.
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const Fastify = createRequire(join(root, 'apps', 'api', 'package.json'))('fastify');

const app = Fastify({ logger: false });
app.get('/healthz', async () => ({ status: 'ok' }));

// like POST /v1/otp/send: JSON body in, 202 with the same shape out
app.post('/v1/otp/send', async (req, reply) => {
  const phoneNumber = req.body?.phoneNumber;
  if (typeof phoneNumber !== 'string')
    return reply.code(400).send({ error: { code: 'invalid_request', message: 'phoneNumber' } });
  return reply.code(202).send({
    id: `otp_${randomUUID().replaceAll('-', '')}`,
    status: 'pending',
    deliveryStatus: 'queued',
    phoneNumber,
    expiresAt: new Date(Date.now() + 600_000).toISOString(),
  });
});

// like POST /webhooks/octopush/delivery/{token}: JSON body in, 200 {} out
app.post('/webhooks/octopush/delivery/:token', async (req, reply) => {
  const b = req.body ?? {};
  if (typeof b.message_id !== 'string' || typeof b.status !== 'string') return reply.code(400).send({});
  return reply.code(200).send({});
});

const stop = async () => {
  await app.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
