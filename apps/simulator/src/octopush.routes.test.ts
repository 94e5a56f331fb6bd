import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildSimulator } from './app.js';
import { startReceiver } from './callback-receiver.test-support.js';
import { SIMULATOR_DEFAULTS, type SimulatorInput } from './sim.options.js';

const { apiKey, apiLogin } = SIMULATOR_DEFAULTS.octopush;
const auth = { 'api-key': apiKey, 'api-login': apiLogin };
const campaign = (over: Record<string, unknown> = {}) => ({
  recipients: [{ phone_number: '+33612345678' }],
  text: 'Votre code est 123456',
  type: 'sms_premium',
  purpose: 'alert',
  sender: 'OTP',
  request_id: 'otp-1:1',
  ...over,
});

let app: FastifyInstance;
afterEach(() => app?.close());
async function start(input: SimulatorInput = {}) {
  app = await buildSimulator(input);
}
const send = (payload: unknown, headers: Record<string, string> = auth) =>
  app.inject({ method: 'POST', url: '/v1/public/sms-campaign/send', headers, payload: payload as object });
const inbox = async () => (await app.inject({ method: 'GET', url: '/_sim/inbox.json?provider=octopush' })).json();

describe('fake Octopush sms-campaign/send', () => {
  it('answers 201 with an sms_ticket and puts the text in the inbox', async () => {
    await start();
    const res = await send(campaign());
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({ number_of_contacts: 1, number_of_sms_needed: 1 });
    expect(body.sms_ticket).toMatch(/^sms_[0-9a-f]+$/);
    expect(typeof body.total_cost).toBe('number');
    expect(await inbox()).toMatchObject([
      { messageId: body.sms_ticket, to: '+33612345678', body: 'Votre code est 123456', requestId: 'otp-1:1' },
    ]);
  });

  it.each([
    [{ 'api-login': apiLogin }, 109],
    [{ 'api-key': apiKey }, 108],
    [{ 'api-key': 'wrong', 'api-login': apiLogin }, 101],
  ])('refuses headers %j with 401 and code %i', async (headers, code) => {
    await start();
    const res = await send(campaign(), headers);
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ code, message: expect.any(String) });
  });

  it.each([
    [{ recipients: [{ phone_number: '0612345678' }] }, 117],
    [{ recipients: [] }, 110],
    [{ text: '' }, 107],
    [{ text: 'x'.repeat(1225) }, 102],
    [{ type: 'sms' }, 112],
    [{ purpose: 'marketing' }, 112],
    [{ sender: 'a b' }, 106],
  ])('refuses %j with 400 and code %i, sending nothing', async (over, code) => {
    await start();
    const res = await send(campaign(over));
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe(code);
    expect(await inbox()).toEqual([]);
  });

  it('refuses a body that is not JSON', async () => {
    await start();
    const res = await app.inject({
      method: 'POST',
      url: '/v1/public/sms-campaign/send',
      headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'text=hello',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe(100);
  });

  it('answers a repeated request_id with the first answer in replay mode and sends nothing more', async () => {
    await start({ octopush: { duplicateRequest: 'replay' } });
    const first = await send(campaign());
    const again = await send(campaign());
    expect(again.statusCode).toBe(201);
    expect(again.json()).toEqual(first.json());
    expect(await inbox()).toHaveLength(1);
    expect((await send(campaign({ request_id: 'otp-1:2' }))).json().sms_ticket).not.toBe(first.json().sms_ticket);
    expect(await inbox()).toHaveLength(2);
  });

  it('answers a repeated request_id with code 120 by default, as the real API documents', async () => {
    await start();
    await send(campaign());
    const again = await send(campaign());
    expect(again.statusCode).toBe(400);
    expect(again.json().code).toBe(120);
    expect(await inbox()).toHaveLength(1);
  });

  it('posts a JSON delivery report whose message_id is the sms_ticket', async () => {
    const receiver = await startReceiver();
    try {
      await start({
        octopush: { callbackUrl: `${receiver.url}/webhooks/octopush/delivery/token` },
        faults: { octopush: { callbackDelayMs: 10 } },
      });
      const ticket = (await send(campaign())).json().sms_ticket;
      const [report] = await receiver.next(1);
      expect(report?.url).toBe('/webhooks/octopush/delivery/token');
      expect(report?.headers['content-type']).toBe('application/json');
      expect(report?.body).toMatchObject({ message_id: ticket, number: '+33612345678', status: 'DELIVERED' });
      expect(report?.body.delivery_date).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    } finally {
      await receiver.close();
    }
  });

  it('accepted_timeout: sends, keeps the request id, and never answers; the repeat meets code 120', async () => {
    await start({ timeoutHangMs: 50 });
    await app.inject({
      method: 'PUT',
      url: '/_sim/faults/octopush',
      payload: { failNext: { kind: 'accepted_timeout' } },
    });
    // the connection is dropped after the hang: inject rejects, or answers without a status the caller could use
    const lost = await send(campaign()).then(
      (r) => r.statusCode,
      () => 'dropped',
    );
    expect(lost).not.toBe(201);
    expect(await inbox()).toHaveLength(1);
    const again = await send(campaign());
    expect({ status: again.statusCode, code: again.json().code }).toEqual({ status: 400, code: 120 });
    expect(await inbox()).toHaveLength(1);
  });

  it.each([
    ['undelivered', 'NOT_DELIVERED'],
    ['opted_out', 'BLACKLISTED_NUMBER'],
    ['no_final_report', 'UNKNOWN_DELIVERY'],
  ])('reports a %s message as %s', async (kind, status) => {
    const receiver = await startReceiver();
    try {
      await start({ octopush: { callbackUrl: `${receiver.url}/cb` }, faults: { octopush: { callbackDelayMs: 10 } } });
      await app.inject({ method: 'PUT', url: '/_sim/faults/octopush', payload: { failNext: { kind } } });
      await send(campaign());
      const [report] = await receiver.next(1);
      expect(report?.body.status).toBe(status);
      expect(await inbox()).toMatchObject([{ status }]);
    } finally {
      await receiver.close();
    }
  });
});
