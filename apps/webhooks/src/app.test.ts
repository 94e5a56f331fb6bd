import { createHmac } from 'node:crypto';
import { Writable } from 'node:stream';
import { loadConfig } from '@otp-gateway/core';
import type { ApplyResult, DeliveryReport, RedisClient, ReportRepo, SendQueues } from '@otp-gateway/store';
import { describe, expect, it } from 'vitest';
import { buildWebhooks, loggableUrl, webhooksLoggerOptions } from './app.js';
import { recordPatience } from './record-report.js';
import { octopushStatusToDelivery, twilioStatusToDelivery } from './status-maps.js';

const TOKEN = 'twilio-auth-token-0123456789abcdef';
const OCTO = 'octo-hook-token-9f8e7d6c5b4a3210';

async function build(
  env: Record<string, string>,
  apply: (r: DeliveryReport) => Promise<ApplyResult>,
  queueRedis?: RedisClient,
  patience = recordPatience([5, 5]),
) {
  const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'info', ...env }, 'webhooks');
  const reports: DeliveryReport[] = [];
  const reportRepo: ReportRepo = {
    apply: (r: DeliveryReport) => {
      reports.push(r);
      return apply(r);
    },
  };
  const lines: string[] = [];
  const stream = new Writable({
    write(c, _e, cb) {
      lines.push(String(c));
      cb();
    },
  });
  const app = await buildWebhooks({
    config,
    reports: reportRepo,
    queues: { shards: [], forOtp: () => ({ add: async () => ({}) }) as never, close: async () => {} } as SendQueues,
    connections: [{ ping: async () => 'PONG' } as unknown as RedisClient, ...(queueRedis ? [queueRedis] : [])],
    logger: { ...(webhooksLoggerOptions(config) as object), stream } as never,
    patience,
  });
  return { app, reports, logs: () => lines.join('') };
}

const sign = (url: string, params: Record<string, string>) =>
  createHmac('sha1', TOKEN)
    .update(
      Object.keys(params)
        .sort()
        .reduce((a, k) => a + k + params[k], url),
    )
    .digest('base64');

const form = { 'content-type': 'application/x-www-form-urlencoded' };

describe('status maps', () => {
  it('maps every Twilio status named by its docs, and nothing else', () => {
    expect(
      [
        'accepted',
        'scheduled',
        'queued',
        'sending',
        'sent',
        'delivered',
        'read',
        'undelivered',
        'failed',
        'canceled',
      ].map(twilioStatusToDelivery),
    ).toEqual([
      'queued',
      'queued',
      'queued',
      'sending',
      'sent',
      'delivered',
      'delivered',
      'undelivered',
      'failed',
      'failed',
    ]);
    expect(twilioStatusToDelivery('receiving')).toBeNull();
  });

  it('maps Octopush final negatives to failed and NOT_DELIVERED to undelivered', () => {
    expect(
      [
        'DELIVERED',
        'NOT_DELIVERED',
        'BAD_DESTINATION',
        'BLACKLISTED_NUMBER',
        'NOT_ALLOWED',
        'READ',
        'UNKNOWN_DELIVERY',
        'ACK',
        'SENT',
      ].map(octopushStatusToDelivery),
    ).toEqual(['delivered', 'undelivered', 'failed', 'failed', 'failed', 'delivered', 'sent', 'sent', 'sent']);
    expect(octopushStatusToDelivery('SOMETHING_NEW')).toBeNull();
  });
});

describe('callbacks app', () => {
  it('is ready only when the queues connection answers too', async () => {
    const applied = async (): Promise<ApplyResult> => ({ kind: 'ignored', reason: 'unknown_otp' });
    // answers after 5 ms, as a Redis over a network would: /readyz must wait for it
    const answering = { ping: () => new Promise((r) => setTimeout(() => r('PONG'), 5)) } as unknown as RedisClient;
    const away = { ping: async () => Promise.reject(new Error('Connection is closed.')) } as unknown as RedisClient;
    const ready = await build({}, applied, answering);
    expect((await ready.app.inject({ url: '/readyz' })).statusCode).toBe(200);
    const notReady = await build({}, applied, away);
    const r = await notReady.app.inject({ url: '/readyz' });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toMatchObject({ error: { code: 'store_unavailable' } });
  });

  it('answers 404 not_configured for a provider without its secret', async () => {
    const { app, reports } = await build({}, async () => ({ kind: 'deferred' }));
    const t = await app.inject({ method: 'POST', url: '/webhooks/twilio/status', headers: form, payload: 'a=b' });
    const o = await app.inject({ method: 'POST', url: `/webhooks/octopush/delivery/${OCTO}`, payload: {} });
    expect([t.statusCode, t.json().error.code, o.statusCode, o.json().error.code]).toEqual([
      404,
      'not_configured',
      404,
      'not_configured',
    ]);
    expect(reports).toHaveLength(0);
    await app.close();
  });

  it('checks the signature against the public URL with the query string Twilio called', async () => {
    const env = { TWILIO_AUTH_TOKEN: TOKEN, PUBLIC_WEBHOOK_BASE_URL: 'https://otp.example.com/' };
    const { app, reports } = await build(env, async () => ({ kind: 'deferred' }));
    const params = { MessageSid: `SM${'1'.repeat(32)}`, MessageStatus: 'sent' };
    const signature = sign('https://otp.example.com/webhooks/twilio/status?x=1', params);
    const res = await app.inject({
      method: 'POST',
      url: '/webhooks/twilio/status?x=1',
      headers: { ...form, 'x-twilio-signature': signature },
      payload: new URLSearchParams(params).toString(),
    });
    expect(res.statusCode).toBe(200);
    expect(reports).toEqual([
      {
        provider: 'twilio',
        messageId: `SM${'1'.repeat(32)}`,
        status: 'sent',
        providerStatus: 'sent',
        errorCode: null,
        at: expect.any(Number),
        phoneNumber: null,
      },
    ]);
    await app.close();
  });

  it('regression: waits out a store that refuses a report for a moment (a failover), instead of answering 503 at once', async () => {
    let refusals = 2;
    const { app, reports, logs } = await build({ OCTOPUSH_WEBHOOK_TOKEN: OCTO }, async () => {
      if (refusals-- > 0) throw new Error('READONLY You can not write against a read only replica.');
      return { kind: 'deferred' };
    });
    const url = `/webhooks/octopush/delivery/${OCTO}`;
    const payload = { message_id: 'm2', number: '+33612345678', status: 'DELIVERED' };
    expect((await app.inject({ method: 'POST', url, payload })).statusCode).toBe(200);
    expect(reports).toHaveLength(3);
    expect(logs()).toContain('delivery report not recorded yet; trying again');
    // with no one else waiting allowed, it answers 503 at once
    const impatient = await build(
      { OCTOPUSH_WEBHOOK_TOKEN: OCTO },
      async () => Promise.reject(new Error('Connection is closed.')),
      undefined,
      recordPatience([60_000], 0),
    );
    const started = Date.now();
    expect((await impatient.app.inject({ method: 'POST', url, payload })).statusCode).toBe(503);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(impatient.reports).toHaveLength(1);
    // an error that is not the store being away fails the same way every time: not tried again
    const broken = await build({ OCTOPUSH_WEBHOOK_TOKEN: OCTO }, async () =>
      Promise.reject(new Error('ERR Error running script: attempt to compare nil with number')),
    );
    expect((await broken.app.inject({ method: 'POST', url, payload })).statusCode).toBe(503);
    expect(broken.reports).toHaveLength(1);
    await app.close();
    await impatient.app.close();
    await broken.app.close();
  });

  it('answers 200 to an unknown Octopush status without recording it, and 503 when the store fails', async () => {
    let fail = false;
    const { app, reports, logs } = await build({ OCTOPUSH_WEBHOOK_TOKEN: OCTO }, async () => {
      if (fail) throw new Error('Connection is closed.');
      return { kind: 'deferred' };
    });
    const url = `/webhooks/octopush/delivery/${OCTO}`;
    const payload = { message_id: 'm1', number: '+33612345678', status: 'SOMETHING_NEW' };
    expect((await app.inject({ method: 'POST', url, payload })).statusCode).toBe(200);
    expect(reports).toHaveLength(0);
    fail = true;
    const down = await app.inject({ method: 'POST', url, payload: { ...payload, status: 'DELIVERED' } });
    expect([down.statusCode, down.json().error.code]).toEqual([503, 'store_unavailable']);
    expect(logs()).toContain('unknown delivery status ignored');
    expect(logs()).not.toContain(OCTO);
    expect(logs()).not.toContain('+33612345678');
    await app.close();
  });

  it('refuses a wrong Octopush token with 403 before reading the body (bad JSON, odd content type)', async () => {
    const { app, reports } = await build({ OCTOPUSH_WEBHOOK_TOKEN: OCTO }, async () => ({ kind: 'deferred' }));
    const url = '/webhooks/octopush/delivery/not-the-token-0123456789';
    const badJson = await app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json' },
      payload: '{"message_id": ',
    });
    const oddType = await app.inject({ method: 'POST', url, headers: { 'content-type': 'text/xml' }, payload: '<x/>' });
    expect([badJson.statusCode, badJson.json().error.code]).toEqual([403, 'invalid_token']);
    expect([oddType.statusCode, oddType.json().error.code]).toEqual([403, 'invalid_token']);
    expect(reports).toHaveLength(0);
    await app.close();
  });

  it('redacts the token segment of any Octopush URL it logs', () => {
    expect(loggableUrl(`/webhooks/octopush/delivery/${OCTO}?a=1`)).toBe('/webhooks/octopush/delivery/[redacted]?a=1');
    expect(loggableUrl(`/webhooks/octopush/delivery/${OCTO}/extra`)).toBe(
      '/webhooks/octopush/delivery/[redacted]/extra',
    );
  });
});
