import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../packages/client/src/index.js';
import { eventually, startApp } from './support/processes.js';
import { codeIn, STACK_KEY, type Stack, startStack } from './support/stack.js';
import { startWebhookReceiver, type WebhookReceiver } from './support/webhook-receiver.js';

// Real processes (simulator with signed receipts, API, worker, callbacks app) posting status events to a receiver
// on loopback; every request checked with the standardwebhooks library, the reference implementation.
const SECRET_NEW = `whsec_${Buffer.from('status-webhook-secret-new-0123456789').toString('base64')}`;
const SECRET_OLD = `whsec_${Buffer.from('status-webhook-secret-old-0123456789').toString('base64')}`;

let stack: Stack;
let receiver: WebhookReceiver;
let n = 0;
const phone = () => `+3367${String(process.pid % 100).padStart(2, '0')}${String(++n).padStart(5, '0')}`;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  stack = await startStack({
    webhooks: true,
    env: {
      STATUS_WEBHOOK_URL: receiver.url,
      STATUS_WEBHOOK_SECRET: `${SECRET_NEW} ${SECRET_OLD}`,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      WEBHOOK_RETRY_BASE_MS: '200',
      OTP_TTL_SECONDS: '30',
      SIM_CALLBACK_DELAY_MS: '100',
    },
  });
});
afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
});

const sendWith = async (phoneNumber: string, metadata: Record<string, string>) => {
  const r = await fetch(`${stack.apiUrl}/v1/otp/send`, {
    method: 'POST',
    headers: { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ phoneNumber, metadata }),
  });
  expect(r.status).toBe(202);
  return ((await r.json()) as { id: string }).id;
};
const eventsOf = (id: string, types: string[], ms = 20_000) =>
  eventually(
    async () => {
      const got = receiver.about(id).filter((r) => r.answered === 200);
      return types.every((t) => got.some((r) => r.json.type === t)) ? got : undefined;
    },
    ms,
    `events ${types.join(', ')} of ${id}`,
  );

describe('status webhooks, end to end', () => {
  it('a full flow posts otp.sent, otp.delivered and otp.approved, signed with both secrets, never the code', async () => {
    const to = phone();
    const id = await sendWith(to, { userId: 'u_1', flow: 'signup' });
    const sms = await eventually(async () => (await stack.inbox(to))[0], 15_000, 'sms');
    const code = codeIn(sms.body)!;
    await eventsOf(id, ['otp.sent', 'otp.delivered']);
    expect((await stack.verify({ id, code })).status).toBe(200);
    const got = await eventsOf(id, ['otp.sent', 'otp.delivered', 'otp.approved']);
    for (const r of got) {
      for (const secret of [SECRET_NEW, SECRET_OLD]) {
        expect(new Webhook(secret).verify(r.body, r.headers)).toMatchObject({ data: { id } });
      }
      expect((await verifyWebhook(r.body, r.headers, SECRET_OLD)).data.id).toBe(id);
      expect(r.body).not.toContain(code);
      expect(r.json.data).toMatchObject({ id, phoneNumber: to, metadata: { userId: 'u_1', flow: 'signup' } });
      expect(r.headers['webhook-id']).toMatch(/^evt_otp_[0-9a-f]{32}_[a-z]+_\d+$/);
    }
    const byType = Object.fromEntries(got.map((r) => [r.json.type, r.json.data]));
    expect(byType['otp.sent']).toMatchObject({ provider: 'twilio', attempt: 1 });
    expect(byType['otp.delivered']).toMatchObject({ deliveryStatus: 'delivered', provider: 'twilio', attempt: 1 });
    expect(byType['otp.approved']).toMatchObject({ status: 'approved' });
  });

  it('an undelivered SMS posts otp.undelivered, then the failover posts otp.sent and otp.delivered', async () => {
    await stack.faults('twilio', { failNext: { count: 1, kind: 'undelivered' } });
    const id = await sendWith(phone(), { case: 'failover' });
    const got = await eventsOf(id, ['otp.sent', 'otp.undelivered', 'otp.delivered']);
    const seq = got.map((r) => [r.json.type, r.json.data.attempt, r.json.data.provider]);
    expect(seq).toEqual(
      expect.arrayContaining([
        ['otp.sent', 1, 'twilio'],
        ['otp.undelivered', 1, 'twilio'],
        ['otp.sent', 2, 'octopush'],
        ['otp.delivered', 2, 'octopush'],
      ]),
    );
    expect(new Set(got.map((r) => r.headers['webhook-id'])).size).toBe(got.length);
    await fetch(`${stack.simUrl}/_sim/reset`, { method: 'POST' });
  });

  it('a receiver answering 500 then 200 gets the same webhook-id and body twice', async () => {
    const to = phone();
    const failed = new Set<string>();
    receiver.answer = (json, headers) => {
      if (json.type !== 'otp.sent' || !String(json.data.phoneNumber).endsWith(to.slice(-5))) return 200;
      if (failed.has(headers['webhook-id']!)) return 200;
      failed.add(headers['webhook-id']!);
      return 500;
    };
    const id = await sendWith(to, { try: 'retry' });
    await eventsOf(id, ['otp.sent']);
    const sent = receiver.about(id).filter((r) => r.json.type === 'otp.sent');
    expect(sent.map((r) => r.answered)).toEqual([500, 200]);
    expect(sent[1]!.headers['webhook-id']).toBe(sent[0]!.headers['webhook-id']);
    expect(sent[1]!.body).toBe(sent[0]!.body);
    // each try is signed for its own time, and verifies
    expect(new Webhook(SECRET_NEW).verify(sent[1]!.body, sent[1]!.headers)).toBeTruthy();
    receiver.answer = () => 200;
  });

  it('an OTP nobody verifies produces otp.expired once it expires', async () => {
    const to = phone();
    const id = await sendWith(to, { case: 'expiry' });
    await eventsOf(id, ['otp.sent']);
    // 30 s of life, then the sweep (every 5 s) notices it
    const got = await eventsOf(id, ['otp.expired'], 60_000);
    const expired = got.filter((r) => r.json.type === 'otp.expired');
    expect(expired).toHaveLength(1);
    expect(expired[0]!.json.data).toMatchObject({ id, status: 'expired', metadata: { case: 'expiry' } });
    expect((await stack.otp(id)).status).toBe('expired');
  }, 90_000);

  it('a wrong code until the last attempt posts otp.locked', async () => {
    const to = phone();
    const id = await sendWith(to, { case: 'lock' });
    await eventually(async () => (await stack.inbox(to))[0], 15_000, 'sms');
    for (let i = 0; i < 5; i++) await stack.verify({ id, code: `00000${i}` });
    const got = await eventsOf(id, ['otp.locked']);
    expect(got.find((r) => r.json.type === 'otp.locked')!.json.data.status).toBe('locked');
  });
});

describe('status webhook configuration', () => {
  it('a loopback endpoint is refused at start without WEBHOOK_ALLOW_PRIVATE_NETWORKS', async () => {
    const env = { ...stack.env, WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'false' };
    for (const app of ['worker', 'api']) {
      const p = startApp(app, env);
      const code = await new Promise<number | null>((r) => p.child.once('exit', (c) => r(c)));
      expect(code).not.toBe(0);
      expect(p.output()).toMatch(/STATUS_WEBHOOK_URL points at a loopback or private address/);
    }
  });
});
