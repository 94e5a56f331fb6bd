import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './support/processes.js';
import { freePort } from './support/redis-server.js';
import { codeIn, STACK_KEY, type Stack, startStack } from './support/stack.js';

// The funnel spans processes: the API counts requests and verifications, the worker sends and failures,
// the callbacks app deliveries. Each exposes Prometheus text; this drives real OTPs through and reads them.
let stack: Stack;
let workerMetrics: string;

beforeAll(async () => {
  const port = await freePort();
  workerMetrics = `http://127.0.0.1:${port}/metrics`;
  stack = await startStack({
    webhooks: true,
    workerEnv: { WORKER_METRICS_PORT: String(port) },
    env: { OTP_MAX_ATTEMPTS: '2' },
  });
});
afterAll(async () => stack?.stop());

/** Sum of a metric's samples whose labels include all of `labels`. */
async function sample(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(url)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

describe('metrics follow the OTP funnel', () => {
  it('counts requested, sent, delivered, undelivered, approved, locked and failed, by provider and country', async () => {
    const api = `${stack.apiUrl}/metrics`;
    const hooks = `${stack.webhooksUrl}/metrics`;
    const before = {
      requested: await sample(api, 'otp_funnel_total', { stage: 'requested', cc: '33' }),
      refusals: await sample(api, 'otp_api_refusals_total', { code: 'unauthorized' }),
      badNumbers: await sample(api, 'otp_api_refusals_total', { code: 'invalid_phone_number' }),
      badBodies: await sample(api, 'otp_api_refusals_total', { code: 'invalid_request' }),
    };

    // 1. sent by Twilio, delivered, approved
    const a = await stack.send('+33640000001');
    await eventually(async () => ((await stack.otp(a.body.id)).deliveryStatus === 'delivered' ? true : undefined));
    const [sms] = await stack.inbox('+33640000001');
    expect((await stack.verify({ id: a.body.id, code: codeIn(sms!.body)! })).status).toBe(200);

    // 2. two wrong codes: locked. Its SMS is out first, so the fault set in step 3 cannot land on it.
    const b = await stack.send('+33640000002');
    await eventually(async () => ((await stack.otp(b.body.id)).deliveryStatus === 'delivered' ? true : undefined));
    for (const code of ['000000', '000001']) await stack.verify({ id: b.body.id, code });

    // 3. Twilio reports it undelivered; it goes out through Octopush and is delivered there
    await stack.faults('twilio', { failNext: { count: 1, kind: 'undelivered' } });
    const c = await stack.send('+33640000003');
    await eventually(async () => {
      const o = await stack.otp(c.body.id);
      return o.provider === 'octopush' && o.deliveryStatus === 'delivered' ? true : undefined;
    });

    // 4. Twilio refuses the number: failed
    await stack.faults('twilio', { failNext: { count: 1, kind: 'invalid_number' } });
    const d = await stack.send('+33640000004');
    await eventually(async () => ((await stack.otp(d.body.id)).status === 'failed' ? true : undefined));

    // 5. a refused request
    await fetch(`${stack.apiUrl}/v1/otp/send`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });

    expect(await sample(api, 'otp_funnel_total', { stage: 'requested', cc: '33' })).toBe(before.requested + 4);
    expect(await sample(api, 'otp_funnel_total', { stage: 'approved', provider: 'twilio', cc: '33' })).toBe(1);
    expect(await sample(api, 'otp_funnel_total', { stage: 'locked', cc: '33' })).toBe(1);
    expect(await sample(api, 'otp_funnel_total', { stage: 'wrong_code' })).toBe(1);
    expect(await sample(api, 'otp_api_refusals_total', { code: 'unauthorized' })).toBe(before.refusals + 1);
    // regression: a malformed number (refused by the service, not the schema) was not counted as a refusal
    expect((await stack.send('+3361234')).status).toBe(400);
    expect(await sample(api, 'otp_api_refusals_total', { code: 'invalid_phone_number' })).toBe(before.badNumbers + 1);
    // and a body that is not JSON (refused by Fastify's parser, not the schema)
    const notJson = await fetch(`${stack.apiUrl}/v1/otp/send`, {
      method: 'POST',
      body: '{"phoneNumber": ',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${STACK_KEY}` },
    });
    expect(notJson.status).toBe(400);
    expect(await sample(api, 'otp_api_refusals_total', { code: 'invalid_request' })).toBe(before.badBodies + 1);

    expect(await sample(workerMetrics, 'otp_funnel_total', { stage: 'sent', provider: 'twilio', cc: '33' })).toBe(3);
    expect(await sample(workerMetrics, 'otp_funnel_total', { stage: 'sent', provider: 'octopush', cc: '33' })).toBe(1);
    expect(await sample(workerMetrics, 'otp_funnel_total', { stage: 'failed', provider: 'twilio' })).toBe(1);
    expect(await sample(workerMetrics, 'otp_provider_failures_total', { provider: 'twilio', kind: 'permanent' })).toBe(
      1,
    );
    expect(await sample(workerMetrics, 'otp_provider_request_seconds_count', { provider: 'twilio' })).toBe(4);
    expect(await sample(workerMetrics, 'otp_failovers_total', { provider: 'octopush' })).toBe(1);

    await eventually(async () =>
      (await sample(hooks, 'otp_funnel_total', { stage: 'delivered', provider: 'octopush', cc: '33' })) === 1
        ? true
        : undefined,
    );
    expect(await sample(hooks, 'otp_funnel_total', { stage: 'delivered', provider: 'twilio', cc: '33' })).toBe(2);
    const negative =
      (await sample(hooks, 'otp_funnel_total', { stage: 'undelivered', provider: 'twilio' })) +
      (await sample(hooks, 'otp_funnel_total', { stage: 'failed', provider: 'twilio' }));
    expect(negative).toBe(1);

    expect(await sample(workerMetrics, 'otp_circuit_state', { provider: 'twilio', state: 'closed' })).toBe(1);

    // 6. Twilio asks to slow down: the circuit state says paused, and the code goes out through Octopush
    await stack.faults('twilio', { retryAfterSeconds: 30, failNext: { count: 1, kind: 'rate_limit' } });
    const e = await stack.send('+33640000005');
    await eventually(async () => ((await stack.otp(e.body.id)).provider === 'octopush' ? true : undefined));
    expect(await sample(workerMetrics, 'otp_circuit_state', { provider: 'twilio', state: 'paused' })).toBe(1);
    expect(await sample(workerMetrics, 'otp_circuit_state', { provider: 'octopush', state: 'closed' })).toBe(1);

    // No label or sample carries a phone number.
    for (const url of [api, workerMetrics, hooks]) expect(await (await fetch(url)).text()).not.toMatch(/3364000000\d/);
  }, 60_000);
});
