import 'dotenv/config';
import { loadConfig } from '@otp-gateway/core';
import { checkRedisConfig, createCallbackRepo, createRedis, createSendQueue, refuseToStart } from '@otp-gateway/store';
import { buildWebhooks } from './app.js';

async function main() {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env, 'webhooks');
  } catch (e) {
    refuseToStart('webhooks', e);
  }
  const redis = createRedis(config.redisUrl, 'request', 'otp-webhooks');
  const queue = createSendQueue(redis);
  queue.on('error', () => {});
  const app = await buildWebhooks({ config, callbacks: createCallbackRepo(redis), queue, redis });
  await checkRedisConfig(redis, { env: config.env, log: app.log, readyTimeoutMs: 2000 }).catch((e) =>
    refuseToStart('webhooks', e),
  );
  if (!config.webhooks.twilioAuthToken) app.log.warn('TWILIO_AUTH_TOKEN is not set: Twilio callbacks answer 404');
  if (!config.webhooks.octopushToken) app.log.warn('OCTOPUSH_WEBHOOK_TOKEN is not set: Octopush callbacks answer 404');

  let closing = false;
  const stop = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'webhooks stopping');
    await app.close();
    await queue.close().catch(() => {});
    redis.disconnect();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  await app.listen({ port: config.webhooks.port, host: config.host });
}

main().catch((e) => {
  process.stderr.write(`otp-gateway webhooks failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
