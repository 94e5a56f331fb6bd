import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startApp, waitForHttp } from './support/processes.js';
import { codeIn, type Stack, startStack } from './support/stack.js';

// Real processes: simulator, API, worker on one Redis. The API is killed (SIGKILL) in the middle of a burst of
// sends and started again on the same port, as a supervisor would.
let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('an API process killed mid-burst', () => {
  it('loses nothing it answered 202; a retry with the Idempotency-Key gets the same OTP; each code goes out once', async () => {
    const api = stack.procs.find((p) => p.name === 'api')!;
    const to = Array.from({ length: 80 }, (_, i) => `+3366${String(5000 + i).padStart(7, '0')}`);
    const key = (phone: string) => `crash-${phone}`;
    const answered = new Map<string, string>();
    const first = Promise.all(
      to.map(async (phone, i) => {
        await sleep(i * 10);
        try {
          const r = await stack.send(phone, { 'idempotency-key': key(phone) });
          if (r.status === 202) answered.set(phone, r.body.id);
          return r.status;
        } catch {
          return 'no answer';
        }
      }),
    );
    await eventually(async () => (answered.size >= 10 ? true : undefined), 15_000, 'ten sends answered');
    await api.stop('SIGKILL');
    const statuses = await first;
    // the kill landed mid-burst: some sends were answered, some never were
    expect(statuses.filter((s) => s === 202).length).toBeGreaterThanOrEqual(10);
    expect(statuses).toContain('no answer');
    expect(statuses.every((s) => s === 202 || s === 'no answer')).toBe(true);

    const again = startApp('api', stack.env);
    stack.procs.push(again);
    await waitForHttp(`${stack.apiUrl}/healthz`);
    // the client retries every send with its key: an answered one gets its OTP back, the others theirs or a new one
    for (const phone of to) {
      const r = await stack.send(phone, { 'idempotency-key': key(phone) });
      expect(r.status).toBe(202);
      if (answered.has(phone)) expect(r.body.id).toBe(answered.get(phone));
      answered.set(phone, r.body.id);
    }
    for (const phone of to) {
      const id = answered.get(phone)!;
      await eventually(
        async () => {
          const o = await stack.otp(id);
          return o.deliveryStatus === 'sent' || o.deliveryStatus === 'delivered' ? o : undefined;
        },
        30_000,
        `${id} sent`,
      );
      const inbox = await stack.inbox(phone);
      expect(inbox, phone).toHaveLength(1);
      const code = codeIn(inbox[0]!.body);
      expect(code).toMatch(/^\d{6}$/);
      expect((await stack.verify({ id, code: code! })).status).toBe(200);
    }
  }, 120_000);
});
