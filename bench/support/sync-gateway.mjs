// The design the gateway grew out of, as the two original tutorials build it: an Express route that stores a
// 6-digit code in Redis with a 10-minute lifetime and calls the SMS provider inline (Octopush's REST API with axios),
// answering only once the provider has. No queue, no retry, no failover. The headline benchmark measures it beside
// the gateway, against the same simulator. Env: PORT, REDIS_URL, OCTOPUSH_API_BASE_URL, OCTOPUSH_API_KEY,
// OCTOPUSH_API_LOGIN.
import { randomInt } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(root, 'package.json'));
const express = require('express');
const { Redis } = require('ioredis');
const axios = createRequire(join(root, 'packages', 'providers', 'package.json'))('axios');

const redis = new Redis(process.env.REDIS_URL);
const app = express();
app.use(express.json());

app.get('/healthz', (_req, res) => res.json({ status: 'ok' }));

app.post('/otp/send', async (req, res) => {
  const phoneNumber = req.body?.phoneNumber;
  if (typeof phoneNumber !== 'string') return res.status(400).json({ error: 'phoneNumber is required' });
  const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
  try {
    await redis.set(`otp:${phoneNumber}`, code, 'EX', 600);
    const r = await axios.post(
      `${process.env.OCTOPUSH_API_BASE_URL}/sms-campaign/send`,
      {
        recipients: [{ phone_number: phoneNumber }],
        text: `Your verification code is ${code}`,
        type: 'sms_premium',
        purpose: 'alert',
        sender: 'OTP',
      },
      {
        headers: { 'api-key': process.env.OCTOPUSH_API_KEY, 'api-login': process.env.OCTOPUSH_API_LOGIN },
        timeout: 10_000,
      },
    );
    res.status(200).json({ status: 'sent', ticket: r.data?.sms_ticket });
  } catch (err) {
    res.status(500).json({ error: 'failed to send the code', detail: err?.message });
  }
});

const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1');
const stop = () => {
  server.close();
  redis.disconnect();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
