import type { FastifyInstance } from 'fastify';
import twilio from 'twilio';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildSimulator } from './app.js';
import { startReceiver } from './callback-receiver.test-support.js';
import { SIMULATOR_DEFAULTS } from './sim.options.js';

const { accountSid, authToken } = SIMULATOR_DEFAULTS.twilio;
const path = `/2010-04-01/Accounts/${accountSid}/Messages.json`;
const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

let app: FastifyInstance;
beforeEach(async () => {
  app = await buildSimulator({ faults: { twilio: { callbackDelayMs: 20 } } });
});
afterEach(() => app.close());

function send(form: Record<string, string>, auth = basic(accountSid, authToken), url = path) {
  return app.inject({
    method: 'POST',
    url,
    headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams(form).toString(),
  });
}
const inbox = async () => (await app.inject({ method: 'GET', url: '/_sim/inbox.json' })).json();
const setFaults = (patch: object) => app.inject({ method: 'PUT', url: '/_sim/faults/twilio', payload: patch });

describe('fake Twilio Messages API', () => {
  it('answers 201 with a Message resource and puts the message in the inbox', async () => {
    const res = await send({
      To: '+33612345678',
      From: '+15005550006',
      Body: 'Your code is 123456',
      ValidityPeriod: '600',
    });
    expect(res.statusCode).toBe(201);
    const m = res.json();
    expect(m.sid).toMatch(/^SM[0-9a-f]{32}$/);
    expect(m).toMatchObject({
      status: 'queued',
      to: '+33612345678',
      from: '+15005550006',
      body: 'Your code is 123456',
    });
    expect(m).toMatchObject({
      account_sid: accountSid,
      api_version: '2010-04-01',
      direction: 'outbound-api',
      num_segments: '1',
    });
    expect(m.date_created).toMatch(/\+0000$/);
    expect(await inbox()).toMatchObject([
      { messageId: m.sid, provider: 'twilio', to: '+33612345678', body: 'Your code is 123456' },
    ]);
  });

  it("answers GET of a message with its price once it went out (Twilio's charge: negative, USD), not before", async () => {
    const created = (await send({ To: '+33612345678', From: '+15005550006', Body: 'Your code is 123456' })).json();
    const get = (sid: string, auth = basic(accountSid, authToken)) =>
      app.inject({
        method: 'GET',
        url: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}.json`,
        headers: { authorization: auth },
      });
    const queued = await get(created.sid);
    expect(queued.statusCode).toBe(200);
    expect(queued.json()).toMatchObject({ sid: created.sid, status: 'queued', price: null, price_unit: 'USD' });
    expect((await get(created.sid, basic(accountSid, 'wrong'))).statusCode).toBe(401);
    expect((await get('SM00000000000000000000000000000000')).json()).toMatchObject({ status: 404, code: 20404 });
    // the callbacks' delay is 20 ms: sent, then delivered
    await new Promise((r) => setTimeout(r, 100));
    expect((await get(created.sid)).json()).toMatchObject({
      status: 'delivered',
      price: '-0.00790',
      price_unit: 'USD',
    });
  });

  it('answers a Messaging Service send as accepted, with no From', async () => {
    const res = await send({ To: '+33612345678', MessagingServiceSid: `MG${'a'.repeat(32)}`, Body: 'hi' });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ status: 'accepted', from: null, messaging_service_sid: `MG${'a'.repeat(32)}` });
  });

  it.each([
    ['a wrong auth token', basic(accountSid, 'nope')],
    ['no credentials', ''],
  ])('refuses %s with 401 and code 20003', async (_, auth) => {
    const res = await send({ To: '+33612345678', From: '+15005550006', Body: 'x' }, auth);
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({
      code: 20003,
      message: 'Authenticate',
      more_info: 'https://www.twilio.com/docs/errors/20003',
      status: 401,
    });
  });

  it('answers 404/20404 for an account other than the authenticated one', async () => {
    const res = await send(
      { To: '+33612345678', From: '+15005550006', Body: 'x' },
      undefined,
      `/2010-04-01/Accounts/AC${'1'.repeat(32)}/Messages.json`,
    );
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe(20404);
  });

  it.each([
    [{ From: '+15005550006', Body: 'x' }, 21604],
    [{ To: '0612345678', From: '+15005550006', Body: 'x' }, 21211],
    [{ To: '+33612345678', Body: 'x' }, 21603],
    [{ To: '+33612345678', From: 'not a sender!', Body: 'x' }, 21212],
    [{ To: '+33612345678', From: '+15005550006' }, 21602],
    [{ To: '+33612345678', From: '+15005550006', Body: 'x', ValidityPeriod: '36001' }, 21624],
    [{ To: '+33612345678', From: '+15005550006', Body: 'x', StatusCallback: 'not a url' }, 21609],
    [{ To: '+15005550004', From: '+15005550006', Body: 'x' }, 21610],
    [{ To: '+15005550003', From: '+15005550006', Body: 'x' }, 21408],
    [{ To: '+33612345678', From: '+15005550007', Body: 'x' }, 21606],
  ])('refuses %j with code %i and sends nothing', async (form, code) => {
    const res = await send(form);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code, status: 400, more_info: `https://www.twilio.com/docs/errors/${code}` });
    expect(await inbox()).toEqual([]);
  });

  it('ignores a JSON body, as Twilio reads form fields only', async () => {
    const res = await app.inject({
      method: 'POST',
      url: path,
      headers: { authorization: basic(accountSid, authToken) },
      payload: { To: '+33612345678', From: '+15005550006', Body: 'x' },
    });
    expect(res.json().code).toBe(21604);
  });

  it('answers 429/20429 with Retry-After while rate limited', async () => {
    await setFaults({ rateLimitRate: 1, retryAfterSeconds: 7 });
    const res = await send({ To: '+33612345678', From: '+15005550006', Body: 'x' });
    expect(res.statusCode).toBe(429);
    expect(res.headers['retry-after']).toBe('7');
    expect(res.json().code).toBe(20429);
  });

  it('fails exactly the next N requests with failNext, then recovers', async () => {
    await setFaults({ failNext: { count: 2, kind: 'server_error' } });
    const form = { To: '+33612345678', From: '+15005550006', Body: 'x' };
    expect((await send(form)).statusCode).toBe(500);
    expect((await send(form)).statusCode).toBe(500);
    expect((await send(form)).statusCode).toBe(201);
  });

  it('answers 503 while down', async () => {
    await setFaults({ down: true });
    expect((await send({ To: '+33612345678', From: '+15005550006', Body: 'x' })).statusCode).toBe(503);
  });
});

describe('fake Twilio status callbacks', () => {
  it('posts sent then delivered, signed so that twilio.validateRequest accepts them', async () => {
    const receiver = await startReceiver();
    try {
      const callbackUrl = `${receiver.url}/webhooks/twilio/status`;
      const res = await send({ To: '+33612345678', From: '+15005550006', Body: 'x', StatusCallback: callbackUrl });
      const sid = res.json().sid;
      const [sent, delivered] = await receiver.next(2);
      for (const cb of [sent, delivered]) {
        const signature = cb?.headers['x-twilio-signature'] as string;
        expect(twilio.validateRequest(authToken, signature, callbackUrl, cb?.body ?? {})).toBe(true);
        expect(twilio.validateRequest('another-token', signature, callbackUrl, cb?.body ?? {})).toBe(false);
      }
      expect(sent?.body).toMatchObject({
        MessageSid: sid,
        MessageStatus: 'sent',
        SmsSid: sid,
        To: '+33612345678',
        AccountSid: accountSid,
      });
      expect(delivered?.body).toMatchObject({ MessageSid: sid, MessageStatus: 'delivered', ApiVersion: '2010-04-01' });
      expect(delivered?.body).not.toHaveProperty('ErrorCode');
      expect(await inbox()).toMatchObject([{ messageId: sid, status: 'delivered' }]);
    } finally {
      await receiver.close();
    }
  });

  // the ending is drawn: random 0 gives undelivered 30003, 0.99 failed 30008
  it.each([
    [0, ['sent', 'undelivered'], '30003'],
    // regression: failed (it never left Twilio) came after a sent
    [0.99, ['failed'], '30008'],
  ])('reports an undelivered message with its error code (draw %d): %j', async (draw, statuses, code) => {
    await app.close();
    app = await buildSimulator({ faults: { twilio: { callbackDelayMs: 20 } }, random: () => draw });
    const receiver = await startReceiver();
    try {
      await setFaults({ failNext: { count: 1, kind: 'undelivered' } });
      await send({ To: '+33612345678', From: '+15005550006', Body: 'x', StatusCallback: `${receiver.url}/s` });
      const received = await receiver.next(statuses.length);
      // no further callback comes
      await new Promise((r) => setTimeout(r, 100));
      expect(receiver.received.map((r) => r.body.MessageStatus)).toEqual(statuses);
      expect(received.at(-1)?.body.ErrorCode).toBe(code);
    } finally {
      await receiver.close();
    }
  });

  it('reports_first: both callbacks are posted before the answer comes', async () => {
    const receiver = await startReceiver();
    try {
      await setFaults({ failNext: { count: 1, kind: 'reports_first' } });
      const res = await send({
        To: '+33612345678',
        From: '+15005550006',
        Body: 'x',
        StatusCallback: `${receiver.url}/s`,
      });
      expect(res.statusCode).toBe(201);
      // by the time the answer is here, sent and delivered were received
      expect(receiver.received.map((r) => r.body.MessageStatus)).toEqual(['sent', 'delivered']);
      expect(receiver.received[0]?.body.MessageSid).toBe(res.json().sid);
    } finally {
      await receiver.close();
    }
  });

  it('sends no callback when the callback is lost, yet the inbox shows the delivery', async () => {
    const receiver = await startReceiver();
    try {
      await setFaults({ lostCallbackRate: 1 });
      await send({ To: '+33612345678', From: '+15005550006', Body: 'x', StatusCallback: `${receiver.url}/s` });
      await new Promise((r) => setTimeout(r, 150));
      expect(receiver.received).toEqual([]);
      expect(await inbox()).toMatchObject([{ status: 'delivered' }]);
    } finally {
      await receiver.close();
    }
  });
});
