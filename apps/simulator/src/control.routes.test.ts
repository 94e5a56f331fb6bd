import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildSimulator } from './app.js';
import { NO_FAULTS, SIMULATOR_DEFAULTS, type SimulatorInput } from './sim.options.js';

let app: FastifyInstance;
afterEach(() => app?.close());
async function start(input: SimulatorInput = {}) {
  app = await buildSimulator(input);
}

const octopushSend = (base: string, signal?: AbortSignal, to = '+33612345678') =>
  fetch(`${base}/v1/public/sms-campaign/send`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'api-key': SIMULATOR_DEFAULTS.octopush.apiKey,
      'api-login': SIMULATOR_DEFAULTS.octopush.apiLogin,
    },
    body: JSON.stringify({ recipients: [{ phone_number: to }], text: 'code 1', type: 'sms_premium', sender: 'OTP' }),
    signal: signal ?? null,
  });

describe('fault control API', () => {
  it('shows both providers with no faults by default', async () => {
    await start();
    const res = await app.inject({ method: 'GET', url: '/_sim/faults' });
    expect(res.json()).toEqual({ twilio: NO_FAULTS, octopush: NO_FAULTS });
  });

  it('merges a partial update and answers the result', async () => {
    await start();
    const res = await app.inject({
      method: 'PUT',
      url: '/_sim/faults/octopush',
      payload: { latencyMs: 50, errorRate: 0.5 },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ latencyMs: 50, errorRate: 0.5, down: false });
    expect((await app.inject({ method: 'GET', url: '/_sim/faults' })).json().twilio.latencyMs).toBe(0);
  });

  it('refuses bad settings, naming each problem, and changes nothing', async () => {
    await start();
    const res = await app.inject({
      method: 'PUT',
      url: '/_sim/faults/twilio',
      payload: { errorRate: 2, down: 'yes', bogus: 1, failNext: { kind: 'no_credit' } },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().problems).toHaveLength(4);
    expect((await app.inject({ method: 'GET', url: '/_sim/faults' })).json().twilio).toEqual(NO_FAULTS);
    expect((await app.inject({ method: 'PUT', url: '/_sim/faults/sinch', payload: {} })).statusCode).toBe(404);
  });

  it('reset empties the inbox and restores the start-up faults', async () => {
    await start({ faults: { twilio: { latencyMs: 5 } } });
    await app.inject({ method: 'PUT', url: '/_sim/faults/twilio', payload: { down: true } });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    await octopushSend(url);
    expect((await app.inject({ method: 'POST', url: '/_sim/reset' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/_sim/inbox.json' })).json()).toEqual([]);
    expect((await app.inject({ method: 'GET', url: '/_sim/faults' })).json().twilio).toMatchObject({
      down: false,
      latencyMs: 5,
    });
  });
});

describe('inbox', () => {
  it('filters by phone, reading a "+" that a query string turned into a space', async () => {
    await start();
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    await octopushSend(url, undefined, '+33612345678');
    await octopushSend(url, undefined, '+33699999999');
    const res = await app.inject({ method: 'GET', url: '/_sim/inbox.json?phone=+33612345678' });
    expect(res.json()).toMatchObject([{ to: '+33612345678', provider: 'octopush' }]);
  });

  it('shows an HTML page per number, escaping what the message says', async () => {
    await start();
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    await fetch(`${url}/v1/public/sms-campaign/send`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'api-key': SIMULATOR_DEFAULTS.octopush.apiKey,
        'api-login': SIMULATOR_DEFAULTS.octopush.apiLogin,
      },
      body: JSON.stringify({
        recipients: [{ phone_number: '+33612345678' }],
        text: '<script>x</script> 4242',
        type: 'sms_premium',
      }),
    });
    const list = await app.inject({ method: 'GET', url: '/inbox' });
    expect(list.headers['content-type']).toContain('text/html');
    expect(list.body).toContain('href="/inbox/%2B33612345678"');
    const page = await app.inject({ method: 'GET', url: '/inbox/%2B33612345678' });
    expect(page.body).toContain('&lt;script&gt;x&lt;/script&gt; 4242');
    expect(page.body).not.toContain('<script>x');
    expect(page.body).toContain('http-equiv="refresh"');
  });

  it('answers /healthz', async () => {
    await start();
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
  });
});

describe('latency and hanging requests', () => {
  it('holds a request for latencyMs', async () => {
    await start({ faults: { octopush: { latencyMs: 200 } } });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const t0 = Date.now();
    expect((await octopushSend(url)).status).toBe(201);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
  });

  it('records nothing when the client gives up during the latency', async () => {
    await start({ faults: { octopush: { latencyMs: 300 } } });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    await expect(octopushSend(url, AbortSignal.timeout(50))).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 400));
    expect((await app.inject({ method: 'GET', url: '/_sim/inbox.json' })).json()).toEqual([]);
  });

  it('never answers a timed-out request, and close releases it at once', async () => {
    await start({ faults: { octopush: { timeoutRate: 1 } }, timeoutHangMs: 60_000 });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const pending = octopushSend(url).then(
      (r) => r.status,
      (e: Error) => e.name,
    );
    const first = await Promise.race([pending, new Promise((r) => setTimeout(() => r('still waiting'), 300))]);
    expect(first).toBe('still waiting');
    const t0 = Date.now();
    await app.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await pending).toBe('TypeError'); // fetch failed: the connection was dropped
  });

  it('resets the connection for a reset fault', async () => {
    await start();
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    await app.inject({
      method: 'PUT',
      url: '/_sim/faults/octopush',
      payload: { failNext: { count: 1, kind: 'reset' } },
    });
    await expect(octopushSend(url)).rejects.toThrow('fetch failed');
    expect((await octopushSend(url)).status).toBe(201);
  });
});
