import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeFromStore, dumpRedis, findClear } from './support/otp-harness.js';
import { eventually } from './support/processes.js';
import { codeIn, type Stack, startStack } from './support/stack.js';

// The whole gateway at LOG_LEVEL=trace: API, worker (the one process that decrypts codes), callbacks app, and
// the simulator standing in for the providers (it receives the code, as a provider does: its output is not scanned).
const CODE_LENGTH = 10; // long codes: a chance match inside a timestamp or a hash is out of reach
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({
    webhooks: true,
    env: { LOG_LEVEL: 'trace', OTP_CODE_LENGTH: String(CODE_LENGTH), SIM_CALLBACK_DELAY_MS: '50' },
  });
});
afterAll(async () => stack?.stop());

describe('the code never appears in clear in any gateway process', () => {
  it('send, provider failure and failover, delivery receipts, wrong and right verify: no log line of the API, worker or callbacks app holds it', async () => {
    // Twilio fails once (a retryable 500): the worker's failure path logs too, then Octopush sends it
    await stack.faults('twilio', { failNext: { count: 1, kind: 'server_error' } });
    const to = '+33612340001';
    const sent = await stack.send(to);
    expect(sent.status).toBe(202);
    const id = sent.body.id as string;
    const code = String(await codeFromStore(stack.store, id));
    expect(code).toMatch(new RegExp(`^\\d{${CODE_LENGTH}}$`));
    const otp = await eventually(
      async () => {
        const o = await stack.otp(id);
        return o.deliveryStatus === 'delivered' ? o : undefined;
      },
      20_000,
      'the OTP delivered',
    );
    expect(otp.attempts.map((a: any) => a.provider)).toEqual(['twilio', 'octopush']);
    // the code did reach the phone (the check below is not vacuous)
    const [sms] = await stack.inbox(to);
    expect(codeIn(sms!.body, CODE_LENGTH)).toBe(code);
    const wrong = code.startsWith('9') ? `0${code.slice(1)}` : `9${code.slice(1)}`;
    expect((await stack.verify({ id, code: wrong })).status).toBe(422);
    expect((await stack.verify({ phoneNumber: to, code })).status).toBe(200);

    const gateway = stack.procs.filter((p) => p.name !== 'simulator');
    expect(gateway.map((p) => p.name).sort()).toEqual(['api', 'webhooks', 'worker']);
    // every process logged this OTP at trace level (the scan reads real output)
    for (const p of gateway) {
      await p.waitForLog((l) => JSON.stringify(l).includes(id), 5000);
    }
    const places: [string, string][] = gateway.flatMap((p) =>
      p
        .output()
        .split('\n')
        .map((line, i): [string, string] => [`${p.name} line ${i}`, line]),
    );
    const dump = await dumpRedis(stack.redis, stack.store.prefix);
    places.push(...dump.map((k): [string, string] => [`redis ${k.type} ${k.key}`, `${k.key}\n${k.values.join('\n')}`]));
    expect(findClear(code, places)).toEqual([]);
    expect(findClear(code, [['probe', `x${code}x`]])).toHaveLength(1);
  }, 60_000);
});
