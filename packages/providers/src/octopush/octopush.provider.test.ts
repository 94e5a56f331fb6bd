import { readFileSync } from 'node:fs';
import axios from 'axios';
import { afterEach, describe, expect, it } from 'vitest';
import { type StubAnswer, silentLog, startStub } from '../stub-server.test-support.js';
import { createOctopushProvider, octopushSenderWarnings } from './octopush.provider.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8'));

let stub: Awaited<ReturnType<typeof startStub>> | undefined;
afterEach(() => stub?.close());

async function setup(answer: StubAnswer, http?: ReturnType<typeof axios.create>) {
  stub = await startStub(() => answer);
  const cfg = { apiKey: 'key-1', apiLogin: 'me@example.com', sender: 'OTP', apiBaseUrl: `${stub.url}/v1/public/` };
  return { provider: createOctopushProvider(cfg, { timeoutMs: 2000 }, http ? { http } : {}), requests: stub.requests };
}
const sms = {
  otpId: 'o1',
  attemptId: 'o1:1',
  attempt: 1,
  to: '+33612345678',
  body: 'Votre code est 123456',
  expiresAt: Date.now() + 600_000,
};
const ctx = () => ({ signal: new AbortController().signal, log: silentLog });

describe('octopush adapter on the wire', () => {
  it('posts the JSON campaign with api-key/api-login and returns the sms_ticket', async () => {
    const { provider, requests } = await setup({ status: 201, body: fixture('campaign-created') });
    expect(await provider.send(sms, ctx())).toEqual({
      messageId: 'sms_5fec89fe97109',
      cost: { amount: 0.045, currency: 'EUR' },
    });
    const [req] = requests;
    expect(req?.url).toBe('/v1/public/sms-campaign/send');
    expect(req?.headers).toMatchObject({
      'api-key': 'key-1',
      'api-login': 'me@example.com',
      'content-type': 'application/json',
    });
    expect(JSON.parse(req?.body ?? '')).toEqual({
      recipients: [{ phone_number: '+33612345678' }],
      text: 'Votre code est 123456',
      type: 'sms_premium',
      purpose: 'alert',
      sender: 'OTP',
      request_id: 'o1:1',
    });
  });

  it("regression: sends a key's own sender when Octopush takes it, else OCTOPUSH_SENDER", async () => {
    // Octopush refuses a sender with a space or a phone number (code 106): a key's sender that suits Twilio made
    // every send of that key through Octopush fail as misconfigured
    const { provider, requests } = await setup({ status: 201, body: fixture('campaign-created') });
    for (const sender of ['ACMESHOP', 'My Shop', '+15005550006', 'AB']) {
      await provider.send({ ...sms, sender }, ctx());
    }
    expect(requests.map((r) => JSON.parse(r.body).sender)).toEqual(['ACMESHOP', 'OTP', 'OTP', 'OTP']);
  });

  it('names the keys whose sender Octopush will not take, for the worker to log', () => {
    const keys = [
      { name: 'shop', sender: 'ACMESHOP' },
      { name: 'spaced', sender: 'My Shop' },
      { name: 'number', sender: '+15005550006' },
      { name: 'plain', sender: null },
    ];
    expect(octopushSenderWarnings(keys, { sender: 'OTP' })).toEqual([
      { key: 'spaced', sender: 'My Shop', instead: 'OTP' },
      { key: 'number', sender: '+15005550006', instead: 'OTP' },
    ]);
    expect(octopushSenderWarnings(keys, null)).toEqual([]);
  });

  it('treats code 120 (request_id already sent) as accepted, without a second message', async () => {
    const { provider } = await setup({ status: 400, body: fixture('error-120') });
    expect(await provider.send(sms, ctx())).toEqual({
      messageId: 'request_id:o1:1',
      providerStatus: 'duplicate_request',
    });
  });

  it('throws retryable for a success without a ticket', async () => {
    const { provider } = await setup({ status: 201, body: '<html>ok</html>' });
    await expect(provider.send(sms, ctx())).rejects.toMatchObject({ kind: 'retryable', code: 'BAD_RESPONSE' });
  });

  it('throws the classified error of a recorded refusal', async () => {
    const { provider } = await setup({ status: 400, body: fixture('error-117') });
    await expect(provider.send(sms, ctx())).rejects.toMatchObject({
      name: 'ProviderError',
      kind: 'permanent',
      code: '117',
    });
  });

  it('uses the axios instance it is given', async () => {
    const http = axios.create();
    let seen = 0;
    http.interceptors.request.use((c) => {
      seen += 1;
      return c;
    });
    const { provider } = await setup({ status: 201, body: fixture('campaign-created') }, http);
    await provider.send(sms, ctx());
    expect(seen).toBe(1);
  });

  it('turns a refused connection into retryable', async () => {
    const { provider } = await setup({ status: 201, body: fixture('campaign-created') });
    await stub?.close();
    stub = undefined;
    await expect(provider.send(sms, ctx())).rejects.toMatchObject({ kind: 'retryable', code: 'ECONNREFUSED' });
  });
});
