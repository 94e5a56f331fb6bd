import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  circuitKey,
  createSendQueues,
  DUE,
  messageKeys,
  otpKeys,
  resendJobId,
  type SendQueues,
} from '../packages/store/src/index.js';
import { eventually } from './support/processes.js';
import { codeIn, OCTOPUSH_TOKEN, SIM_OCTOPUSH, type Stack, startStack } from './support/stack.js';

// Real processes: simulator (signed Twilio callbacks, Octopush reports), API, worker, callbacks app.
let stack: Stack;
let queues: SendQueues;
let n = 0;
const phone = () => `+3365${String(++n).padStart(7, '0')}`;

beforeAll(async () => {
  stack = await startStack({
    webhooks: true,
    // Twilio's StatusCallback names the attempt here (its reports skip the message index); the default, the plain
    // URL with indexed messages, is what the other end-to-end tests run
    env: { DELIVERY_TIMEOUT_SECONDS: '5', SIM_CALLBACK_DELAY_MS: '100', TWILIO_CALLBACK_NAMES_ATTEMPT: 'true' },
  });
  queues = createSendQueues(stack.redis, stack.store.ks, {
    sendShards: Number(stack.env.SEND_QUEUE_SHARDS ?? 1),
    keepCompleted: 100,
    keepFailedSeconds: 3600,
  });
});
afterAll(async () => {
  await queues?.close();
  await stack?.stop();
});
afterEach(async () => {
  await fetch(`${stack.simUrl}/_sim/reset`, { method: 'POST' });
});

/**
 * Resolves once the sweep has looked at attempt 1's receipt check (its entry left the due set): it may come
 * up to DELIVERY_TIMEOUT_SECONDS + a sweep period + the round's spread after the send, so no fixed sleep covers
 * it. Then, whatever it decided (a resend job) is there to be seen.
 */
const receiptChecked = (id: string) =>
  eventually(
    async () =>
      (await stack.redis.zscore(otpKeys(stack.store.ks, id).due, `${DUE.receipt}${id}:1`)) === null ? true : undefined,
    30_000,
    `receipt check of ${id}`,
  );
const noResend = async (id: string) => expect(await queues.forOtp(id).getJob(resendJobId(id, 1))).toBeUndefined();

const until = (id: string, pred: (otp: any) => boolean, ms = 15_000) =>
  eventually(
    async () => {
      const otp = await stack.otp(id);
      return pred(otp) ? otp : undefined;
    },
    ms,
    `otp ${id}`,
  );

describe('delivery tracking', () => {
  it('a signed Twilio receipt moves the OTP to delivered', async () => {
    const to = phone();
    const { body } = await stack.send(to);
    const otp = await until(body.id, (o) => o.deliveryStatus === 'delivered');
    expect(otp.provider).toBe('twilio');
    expect(otp.attempts).toEqual([
      expect.objectContaining({ provider: 'twilio', outcome: 'delivered', providerStatus: 'delivered' }),
    ]);
    // the StatusCallback named the attempt: the worker indexed no message id, the callbacks app looked none up
    const sid = otp.attempts[0].messageId;
    expect(sid).toMatch(/^SM/);
    const msg = messageKeys(stack.store.ks, 'twilio', sid);
    expect(await stack.redis.exists(msg.index, msg.early)).toBe(0);
    const status = await fetch(`${stack.apiUrl}/v1/otp/status?phoneNumber=${encodeURIComponent(to)}`, {
      headers: { authorization: `Bearer ${(stack.env.API_KEYS ?? '').split(':')[1]}` },
    });
    expect(((await status.json()) as any).deliveryStatus).toBe('delivered');
  });

  it("a Twilio report that beats the provider's answer is kept on its attempt, then applied by the worker", async () => {
    const early = async () => {
      const text = await (await fetch(`${stack.webhooksUrl}/metrics`)).text();
      const m = /otp_callback_early_reports_total\{provider="twilio",outcome="kept"\} (\d+)/.exec(text);
      return Number(m?.[1] ?? 0);
    };
    const before = await early();
    await stack.faults('twilio', { failNext: { count: 1, kind: 'reports_first' } });
    const { body } = await stack.send(phone());
    const otp = await until(body.id, (o) => o.deliveryStatus === 'delivered');
    expect(otp.attempts).toEqual([expect.objectContaining({ provider: 'twilio', outcome: 'delivered' })]);
    // sent and delivered both came while the worker waited for Twilio's answer: the callbacks app kept them
    expect((await early()) - before).toBe(2);
    const msg = messageKeys(stack.store.ks, 'twilio', otp.attempts[0].messageId);
    expect(await stack.redis.exists(msg.index, msg.early)).toBe(0);
  });

  it('an Octopush receipt with the right token moves the OTP to delivered', async () => {
    await stack.faults('twilio', { down: true });
    const { body } = await stack.send(phone());
    const otp = await until(body.id, (o) => o.deliveryStatus === 'delivered');
    expect(otp.provider).toBe('octopush');
    expect(otp.attempts.at(-1)).toMatchObject({
      provider: 'octopush',
      outcome: 'delivered',
      providerStatus: 'DELIVERED',
    });
  });

  it('an undelivered report from Twilio sends the same code through Octopush', async () => {
    await stack.faults('twilio', { failNext: { count: 1, kind: 'undelivered' } });
    const to = phone();
    const { body } = await stack.send(to);
    const otp = await until(body.id, (o) => o.provider === 'octopush' && o.deliveryStatus === 'delivered');
    // The simulator reports non-delivery as Twilio does: `undelivered` (30003, 30005) or `failed` (30008).
    expect(otp.attempts.map((a: any) => a.provider)).toEqual(['twilio', 'octopush']);
    expect(['undelivered', 'failed']).toContain(otp.attempts[0].outcome);
    expect(otp.attempts[0].errorCode).toMatch(/^300\d\d$/);
    expect(otp.attempts[1].outcome).toBe('delivered');
    const inbox = await stack.inbox(to);
    expect(inbox.map((m) => m.provider)).toEqual(['twilio', 'octopush']);
    expect(codeIn(inbox[0]!.body)).toBe(codeIn(inbox[1]!.body));
    expect((await stack.verify({ id: body.id, code: codeIn(inbox[1]!.body)! })).status).toBe(200);
  });

  it('a provider that stays silent past DELIVERY_TIMEOUT_SECONDS gets the code resent through the next one', async () => {
    await stack.faults('twilio', { failNext: { count: 1, kind: 'lost_callback' } });
    const to = phone();
    const { body } = await stack.send(to);
    await until(body.id, (o) => o.deliveryStatus === 'sent');
    const otp = await until(body.id, (o) => o.provider === 'octopush' && o.deliveryStatus === 'delivered', 20_000);
    expect(otp.attempts.map((a: any) => [a.provider, a.outcome])).toEqual([
      ['twilio', 'no_receipt'],
      ['octopush', 'delivered'],
    ]);
    const inbox = await stack.inbox(to);
    expect(new Set(inbox.map((m) => codeIn(m.body))).size).toBe(1);
  }, 30_000);

  it('regression: a destination that reports no further than sent gets the code again, and Twilio takes no failure', async () => {
    // (with failureThreshold's default a country without delivery reports could open Twilio's circuit for all)
    await stack.faults('twilio', { failNext: { count: 2, kind: 'no_final_report' } });
    const sends = await Promise.all([phone(), phone()].map(async (to) => ({ to, id: (await stack.send(to)).body.id })));
    for (const { id } of sends) {
      await until(id, (o) => o.attempts[0]?.providerStatus === 'sent');
    }
    for (const { to, id } of sends) {
      await receiptChecked(id);
      // in doubt (a final report lost on its way looks the same), the same code goes out through Octopush
      const otp = await until(id, (o) => o.provider === 'octopush' && o.deliveryStatus === 'delivered');
      expect(otp.attempts.map((a: any) => [a.provider, a.outcome])).toEqual([
        ['twilio', 'no_receipt'],
        ['octopush', 'delivered'],
      ]);
      const inbox = await stack.inbox(to);
      expect(inbox.map((m) => m.provider)).toEqual(['twilio', 'octopush']);
      expect(new Set(inbox.map((m) => codeIn(m.body))).size).toBe(1);
    }
    expect(Number((await stack.redis.hget(circuitKey(stack.store.ks, 'twilio'), 'fails')) ?? 0)).toBe(0);
    const [sms] = await stack.inbox(sends[0]!.to);
    expect((await stack.verify({ id: sends[0]!.id, code: codeIn(sms!.body)! })).status).toBe(200);
  }, 40_000);

  it('an approved OTP gets no resend when its receipt never comes', async () => {
    await stack.faults('twilio', { failNext: { count: 1, kind: 'lost_callback' } });
    const to = phone();
    const { body } = await stack.send(to);
    await until(body.id, (o) => o.deliveryStatus === 'sent');
    const [sms] = await stack.inbox(to);
    expect((await stack.verify({ phoneNumber: to, code: codeIn(sms!.body)! })).status).toBe(200);
    await receiptChecked(body.id);
    await noResend(body.id);
    expect(await stack.inbox(to)).toHaveLength(1);
    const otp = await stack.otp(body.id);
    expect(otp.status).toBe('approved');
    expect(otp.attempts.map((a: any) => a.outcome)).toEqual(['accepted']);
  }, 30_000);
});

describe('a receipt that arrives before the worker recorded the message id', () => {
  let early: Stack;
  beforeAll(async () => {
    // replay: the simulator answers a repeated request_id with the first answer (the real API refuses it, code 120)
    early = await startStack({
      workers: 0,
      webhooks: true,
      env: { SMS_PROVIDERS: 'octopush', SIM_OCTOPUSH_DUPLICATE_REQUEST: 'replay' },
    });
  });
  afterAll(async () => early?.stop());

  it('is kept, and applied once the id is recorded', async () => {
    const to = '+33655500001';
    const { body } = await early.send(to);
    // Octopush gives the same sms_ticket to a repeated request_id: learn the ticket the worker's first attempt
    // (request_id `{otpId}-1`) will get, and have its delivery report arrive before any worker ran.
    const ask = await fetch(`${early.simUrl}/v1/public/sms-campaign/send`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'api-key': SIM_OCTOPUSH.key, 'api-login': SIM_OCTOPUSH.login },
      body: JSON.stringify({
        recipients: [{ phone_number: to }],
        text: 'hello',
        type: 'sms_premium',
        purpose: 'alert',
        sender: 'OTP',
        request_id: `${body.id}-1`,
      }),
    });
    const ticket = ((await ask.json()) as { sms_ticket: string }).sms_ticket;
    const report = await fetch(`${early.webhooksUrl}/webhooks/octopush/delivery/${OCTOPUSH_TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        message_id: ticket,
        number: to,
        status: 'DELIVERED',
        delivery_date: new Date().toISOString(),
      }),
    });
    expect(report.status).toBe(200);
    expect((await early.otp(body.id)).deliveryStatus).toBe('queued');
    expect(await early.redis.llen(messageKeys(early.store.ks, 'octopush', ticket).early)).toBeGreaterThanOrEqual(1);

    await early.startWorker();
    const otp = await until2(early, body.id, (o) => o.deliveryStatus === 'delivered');
    expect(otp.attempts).toEqual([
      expect.objectContaining({ provider: 'octopush', messageId: ticket, outcome: 'delivered' }),
    ]);
    expect(await early.redis.exists(messageKeys(early.store.ks, 'octopush', ticket).early)).toBe(0);
  });
});

const until2 = (s: Stack, id: string, pred: (otp: any) => boolean, ms = 15_000) =>
  eventually(
    async () => {
      const otp = await s.otp(id);
      return pred(otp) ? otp : undefined;
    },
    ms,
    `otp ${id}`,
  );
