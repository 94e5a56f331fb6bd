import { getEventListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import type { TwilioConfig } from '@otp-gateway/core';
import { afterEach, describe, expect, it } from 'vitest';
import { type StubAnswer, silentLog, startStub } from '../stub-server.test-support.js';
import { callHandoff, createTwilioHttpClient } from './twilio.http-client.js';
import { createTwilioProvider, validityPeriodSeconds } from './twilio.provider.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8'));
const SID = 'ACsimulator00000000000000000000000';

let stub: Awaited<ReturnType<typeof startStub>> | undefined;
afterEach(() => stub?.close());

async function setup(
  answer: StubAnswer,
  cfg: Partial<TwilioConfig> = {},
  statusCallbackUrl: string | null = null,
  timeoutMs = 2000,
  callbackNamesAttempt = false,
) {
  stub = await startStub(() => answer);
  const provider = createTwilioProvider(
    {
      accountSid: SID,
      authToken: 'secret-token',
      from: '+15005550006',
      messagingServiceSid: null,
      apiBaseUrl: stub.url,
      ...cfg,
    },
    { timeoutMs, statusCallbackUrl, callbackNamesAttempt },
  );
  return { provider, requests: stub.requests };
}
const sms = {
  otpId: 'o1',
  attemptId: 'o1:1',
  attempt: 1,
  to: '+33612345678',
  body: 'Your code is 123456',
  expiresAt: Date.now() + 600_000,
};
const ctx = () => ({ signal: new AbortController().signal, log: silentLog });

describe('twilio adapter on the wire', () => {
  it('returns the price when the answer has one (a charge, negative in Twilio), in its price_unit', async () => {
    const body = { ...fixture('message-created'), price: '-0.07500', price_unit: 'usd' };
    const { provider } = await setup({ status: 201, body });
    expect((await provider.send(sms, ctx())).cost).toEqual({ amount: 0.075, currency: 'USD' });
  });

  it('posts the form Twilio expects to the configured host and returns the sid', async () => {
    const { provider, requests } = await setup(
      { status: 201, body: fixture('message-created') },
      {},
      'https://otp.example.com/webhooks/twilio/status',
      2000,
      true,
    );
    const otpId = `otp_${'0f'.repeat(16)}`;
    const result = await provider.send({ ...sms, otpId, attempt: 3 }, ctx());
    // the StatusCallback names the OTP and the attempt, so its reports need no message index
    expect(result).toEqual({
      messageId: 'SM3f9a1c0de2b44a7c9e8d5b6a7f201c4e',
      providerStatus: 'queued',
      reportsNameAttempt: true,
    });
    const [req] = requests;
    expect(req?.method).toBe('POST');
    expect(req?.url).toBe(`/2010-04-01/Accounts/${SID}/Messages.json`);
    expect(req?.headers.authorization).toBe(`Basic ${Buffer.from(`${SID}:secret-token`).toString('base64')}`);
    expect(req?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    const form = Object.fromEntries(new URLSearchParams(req?.body));
    expect(form).toMatchObject({
      To: '+33612345678',
      From: '+15005550006',
      Body: 'Your code is 123456',
      StatusCallback: `https://otp.example.com/webhooks/twilio/status?otp=${otpId}&attempt=3`,
    });
    expect(Number(form.ValidityPeriod)).toBeGreaterThanOrEqual(598);
    expect(Number(form.ValidityPeriod)).toBeLessThanOrEqual(600);
  });

  it('by default (the outer contract) the StatusCallback is the configured URL as it is, and the message is indexed', async () => {
    const { provider, requests } = await setup(
      { status: 201, body: fixture('message-created') },
      {},
      'https://otp.example.com/webhooks/twilio/status',
    );
    const result = await provider.send({ ...sms, otpId: `otp_${'0f'.repeat(16)}` }, ctx());
    expect(result.reportsNameAttempt).toBe(false);
    const form = Object.fromEntries(new URLSearchParams(requests[0]?.body));
    expect(form.StatusCallback).toBe('https://otp.example.com/webhooks/twilio/status');
  });

  it('an OTP id the callbacks app could not read back gets the plain StatusCallback, and its message is indexed', async () => {
    const { provider, requests } = await setup(
      { status: 201, body: fixture('message-created') },
      {},
      'https://otp.example.com/webhooks/twilio/status',
      2000,
      true,
    );
    const result = await provider.send({ ...sms, otpId: 'not-an-otp-id' }, ctx());
    expect(result.reportsNameAttempt).toBe(false);
    const form = Object.fromEntries(new URLSearchParams(requests[0]?.body));
    expect(form.StatusCallback).toBe('https://otp.example.com/webhooks/twilio/status');
  });

  it('sends MessagingServiceSid instead of From when one is configured, and no StatusCallback without a URL', async () => {
    const mss = `MG${'0'.repeat(32)}`;
    const { provider, requests } = await setup(
      { status: 201, body: fixture('message-created') },
      { messagingServiceSid: mss },
    );
    const result = await provider.send(sms, ctx());
    const form = Object.fromEntries(new URLSearchParams(requests[0]?.body));
    expect(form.MessagingServiceSid).toBe(mss);
    expect(form).not.toHaveProperty('From');
    expect(form).not.toHaveProperty('StatusCallback');
    // reports (if any: the messaging service's own callback) come without the attempt: the index must find them
    expect(result.reportsNameAttempt).toBe(false);
  });

  it('throws a ProviderError from a recorded error answer, with Retry-After', async () => {
    const { provider } = await setup({ status: 429, headers: { 'retry-after': '5' }, body: fixture('error-20429') });
    await expect(provider.send(sms, ctx())).rejects.toMatchObject({
      name: 'ProviderError',
      kind: 'rate_limited',
      code: '20429',
      retryAfterMs: 5000,
    });
  });

  it('a 2xx that is not a message (no sid: a wrong TWILIO_API_BASE_URL, a proxy) is a failure, not a send', async () => {
    for (const body of [{}, { ok: true }, { ...fixture('message-created'), sid: '' }]) {
      const { provider } = await setup({ status: 200, body });
      await expect(provider.send(sms, ctx())).rejects.toMatchObject({
        name: 'ProviderError',
        kind: 'retryable',
        code: 'BAD_RESPONSE',
      });
      await stub?.close();
    }
  });

  it('regression: a cost check whose answer is cut off fails without quoting it (the message resource holds the code)', async () => {
    const cut = JSON.stringify(fixture('message-created'))
      .replace('"body":', '"body": "Your code is 123456",')
      .slice(0, 200);
    const { provider } = await setup({ status: 200, body: cut });
    const err = await provider.cost?.('SM3f9a1c0de2b44a7c9e8d5b6a7f201c4e', ctx()).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'ProviderError', kind: 'retryable', code: 'BAD_RESPONSE' });
    expect(String((err as Error).message)).not.toContain('123456');
  });

  it('throws permanent for an opted-out recipient', async () => {
    const { provider } = await setup({ status: 400, body: fixture('error-21610') });
    await expect(provider.send(sms, ctx())).rejects.toMatchObject({ kind: 'permanent', code: '21610' });
  });

  it('ends a send when its caller aborts while the answer is being read, without waiting for the deadline', async () => {
    // the head of the answer goes out at once, its body never: 200 ms after the request, the head has arrived
    const answer = { status: 201, body: fixture('message-created'), holdBodyMs: 10_000 };
    const { provider, requests } = await setup(answer, {}, null, 10_000);
    const caller = new AbortController();
    const sending = provider.send(sms, { signal: caller.signal, log: silentLog });
    while (requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 200));
    const abortedAt = Date.now();
    caller.abort();
    await expect(sending).rejects.toMatchObject({ kind: 'retryable', code: 'ABORTED' });
    expect(Date.now() - abortedAt).toBeLessThan(2000);
  });

  it('aborting one of two concurrent sends ends that one only: each request has its own send', async () => {
    stub = await startStub((req) =>
      req.body.includes('33600000001')
        ? { status: 201, body: fixture('message-created'), holdBodyMs: 10_000 }
        : { status: 201, body: fixture('message-created'), holdBodyMs: 400 },
    );
    const provider = createTwilioProvider(
      { accountSid: SID, authToken: 't', from: '+15005550006', messagingServiceSid: null, apiBaseUrl: stub.url },
      { timeoutMs: 10_000, statusCallbackUrl: null },
    );
    const first = new AbortController();
    const held = provider.send({ ...sms, to: '+33600000001' }, { signal: first.signal, log: silentLog });
    const other = provider.send({ ...sms, to: '+33600000002' }, ctx());
    while (stub.requests.length < 2) await new Promise((r) => setTimeout(r, 5));
    const abortedAt = Date.now();
    first.abort();
    await expect(held).rejects.toMatchObject({ code: 'ABORTED' });
    expect(Date.now() - abortedAt).toBeLessThan(2000);
    await expect(other).resolves.toMatchObject({ messageId: fixture('message-created').sid });
  });

  it('ends a send whose answer stops midway at its deadline, as a timeout', async () => {
    const answer = { status: 201, body: fixture('message-created'), holdBodyMs: 10_000 };
    const { provider } = await setup(answer, {}, null, 300);
    const started = Date.now();
    await expect(provider.send(sms, ctx())).rejects.toMatchObject({ kind: 'retryable', code: 'TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('the HTTP client removes its abort listener when a request ends, answered or not', async () => {
    stub = await startStub(() => ({ status: 201, body: fixture('message-created') }));
    const signal = new AbortController().signal;
    const client = createTwilioHttpClient({ timeoutMs: 5000, scope: () => ({ signal }) });
    const request = {
      method: 'post',
      uri: `${stub.url}/2010-04-01/Accounts/${SID}/Messages.json`,
      data: { To: '+33612345678' },
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    };
    for (let i = 0; i < 3; i++) expect(await client.request(request)).toMatchObject({ statusCode: 201 });
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    await expect(client.request({ ...request, uri: 'http://127.0.0.1:9/refused' })).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    await expect(client.request({ ...request, uri: 'ftp://127.0.0.1/x' })).rejects.toThrow('only http: and https:');
  });

  it('makes no request with an aborted signal', async () => {
    const { provider, requests } = await setup({ status: 201, body: fixture('message-created') });
    await expect(provider.send(sms, { signal: AbortSignal.abort(), log: silentLog })).rejects.toMatchObject({
      code: 'ABORTED',
    });
    expect(requests).toHaveLength(0);
  });
});

describe('callHandoff', () => {
  it('gives the send to the first take within run, once, and to nothing after run, even when the call throws', () => {
    const h = callHandoff();
    const send = { signal: new AbortController().signal };
    expect(h.run(send, () => [h.take(), h.take()])).toEqual([send, undefined]);
    expect(() =>
      h.run(send, () => {
        throw new Error('library refused the call');
      }),
    ).toThrow('library refused');
    expect(h.take()).toBeUndefined();
  });
});

describe('validityPeriodSeconds', () => {
  it('is the seconds left, clamped to 1..36000', () => {
    const now = 1_000_000;
    expect(validityPeriodSeconds(now + 600_000, now)).toBe(600);
    expect(validityPeriodSeconds(now + 1500, now)).toBe(1);
    expect(validityPeriodSeconds(now - 5000, now)).toBe(1);
    expect(validityPeriodSeconds(now + 48 * 3600_000, now)).toBe(36_000);
  });
});
