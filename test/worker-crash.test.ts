import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './support/processes.js';
import { codeIn, type Stack, startStack } from './support/stack.js';

// Real processes: simulator with 800 ms Twilio latency (so the sends of a burst are in flight together even on
// a busy machine), API, two workers sharing one Redis. Each worker takes 2 jobs per shard at a time, fewer than
// the burst: a worker that has just had one send accepted is already sending the next when it is killed.
let stack: Stack;
const phones = (count: number, base: number) =>
  Array.from({ length: count }, (_, i) => `+3366${String(base + i).padStart(7, '0')}`);

beforeAll(async () => {
  stack = await startStack({
    workers: 2,
    env: { SIM_TWILIO_LATENCY_MS: '800' },
    workerEnv: { WORKER_CONCURRENCY: '2', WORKER_LOCK_MS: '2000' },
  });
});
afterAll(async () => stack?.stop());

async function expectDeliveredOnce(ids: string[], to: string[]) {
  const otps = await eventually(
    async () => {
      const all = await Promise.all(ids.map((id) => stack.otp(id)));
      return all.every((o) => o.deliveryStatus === 'sent' || o.deliveryStatus === 'delivered') ? all : undefined;
    },
    30_000,
    'every OTP sent',
  );
  for (const [i, otp] of otps.entries()) {
    const inbox = await stack.inbox(to[i]);
    const accepted = otp.attempts.filter((a: any) => a.outcome === 'accepted' || a.outcome === 'delivered');
    // One accepted attempt per OTP. An attempt a killed worker left in flight is recorded `interrupted` (it
    // may or may not have gone out): at most one SMS per attempt record that could have sent one.
    expect(accepted, `${otp.id} attempts`).toHaveLength(1);
    const couldSend = otp.attempts.filter((a: any) => a.outcome === 'interrupted').length + accepted.length;
    expect(inbox.length, `${to[i]} inbox`).toBeGreaterThanOrEqual(1);
    expect(inbox.length, `${to[i]} inbox`).toBeLessThanOrEqual(couldSend);
    // Never two different codes for one OTP, and a code in each (a message without one would pass as one "code")
    const codes = new Set(inbox.map((m) => codeIn(m.body)));
    expect(codes.size).toBe(1);
    expect([...codes][0]).toMatch(/^\d{6}$/);
  }
  return otps;
}

describe('workers that stop', () => {
  it('a worker killed mid-burst has its jobs taken over; every OTP goes out once with one code', async () => {
    const to = phones(30, 1000);
    const ids = await Promise.all(to.map(async (p) => (await stack.send(p)).body.id as string));
    const victim = stack.workers[0]!;
    await victim.waitForLog((l) => l.msg === 'sms accepted by provider');
    // Half a provider latency later the victim is in the middle of its next sends (started right after that one).
    await new Promise((r) => setTimeout(r, 400));
    await victim.stop('SIGKILL');
    const otps = await expectDeliveredOnce(ids, to);
    // The killed worker had sends in flight: the other worker took them over once their lock expired.
    const taken = otps.filter((o) => o.attempts.some((a: any) => a.outcome === 'interrupted'));
    expect(taken.length).toBeGreaterThan(0);
    for (const o of taken) expect(o.attempts.at(-1).outcome).toBe('accepted');
  }, 60_000);

  it('SIGTERM lets in-flight sends finish before the worker exits', async () => {
    await stack.workers[1]!.stop('SIGTERM');
    const w = await stack.startWorker({ WORKER_CONCURRENCY: '5' });
    const to = phones(5, 2000);
    const ids = await Promise.all(to.map(async (p) => (await stack.send(p)).body.id as string));
    // Stop while the provider still holds the requests (it answers after 800 ms).
    await eventually(
      async () => {
        const all = await Promise.all(ids.map((id) => stack.otp(id)));
        return all.every((o) => o.deliveryStatus === 'sending') ? true : undefined;
      },
      10_000,
      'every send in flight',
    );
    expect(await w.stop('SIGTERM')).toBe(0);
    expect(w.logs().some((l) => l.msg === 'worker stopped')).toBe(true);
    // No worker runs now: what was in flight finished before the exit.
    for (const id of ids) {
      const otp = await stack.otp(id);
      expect(otp.deliveryStatus).toBe('sent');
      expect(otp.attempts.map((a: any) => a.outcome)).toEqual(['accepted']);
    }
    await expectDeliveredOnce(ids, to);
  }, 60_000);
});
