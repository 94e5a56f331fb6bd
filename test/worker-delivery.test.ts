import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { circuitKey } from '../packages/store/src/index.js';
import { eventually } from './support/processes.js';
import { codeIn, type Stack, startStack } from './support/stack.js';

// Real processes over loopback HTTP: simulator (fake Twilio and Octopush), API, worker, one key prefix.
let stack: Stack;
let n = 0;
const phone = () => `+3367${String(process.pid % 1000).padStart(3, '0')}${String(++n).padStart(4, '0')}`;

beforeAll(async () => {
  stack = await startStack({
    env: { OTP_TTL_SECONDS: '30' },
    workerEnv: { CIRCUIT_FAILURE_THRESHOLD: '50', CIRCUIT_COOLDOWN_SECONDS: '2' },
  });
});
afterAll(async () => stack?.stop());
afterEach(async () => {
  await fetch(`${stack.simUrl}/_sim/reset`, { method: 'POST' });
  await Promise.all(['twilio', 'octopush'].map((p) => stack.redis.del(circuitKey(stack.store.ks, p as 'twilio'))));
});

const settled = (id: string, pred: (otp: any) => boolean, ms = 15_000) =>
  eventually(
    async () => {
      const otp = await stack.otp(id);
      return pred(otp) ? otp : undefined;
    },
    ms,
    `otp ${id} to settle`,
  );

describe('send worker', () => {
  it('delivers a sent code to the phone through the first provider, and the code verifies', async () => {
    const to = phone();
    const sent = await stack.send(to);
    expect(sent.status).toBe(202);
    const otp = await settled(sent.body.id, (o) => o.deliveryStatus === 'sent');
    expect(otp.provider).toBe('twilio');
    expect(otp.attempts).toHaveLength(1);
    expect(otp.attempts[0]).toMatchObject({ provider: 'twilio', outcome: 'accepted' });
    expect(otp.attempts[0].messageId).toMatch(/^SM[0-9a-f]{32}$/);
    const inbox = await stack.inbox(to);
    expect(inbox).toHaveLength(1);
    expect(inbox[0]!.provider).toBe('twilio');
    const code = codeIn(inbox[0]!.body);
    expect(code).toMatch(/^\d{6}$/);
    const v = await stack.verify({ id: sent.body.id, code: code! });
    expect(v).toMatchObject({ status: 200, body: { status: 'approved' } });
  });

  it('fails over to Octopush when Twilio is down, with the same code', async () => {
    await stack.faults('twilio', { down: true });
    const to = phone();
    const sent = await stack.send(to);
    const otp = await settled(sent.body.id, (o) => o.deliveryStatus === 'sent');
    expect(otp.provider).toBe('octopush');
    expect(otp.attempts[0]).toMatchObject({ provider: 'twilio', outcome: 'retryable' });
    expect(otp.attempts.at(-1)).toMatchObject({ provider: 'octopush', outcome: 'accepted' });
    const inbox = await stack.inbox(to);
    expect(inbox.map((m) => m.provider)).toEqual(['octopush']);
    const v = await stack.verify({ phoneNumber: to, code: codeIn(inbox[0]!.body)! });
    expect(v.status).toBe(200);
  });

  it('regression: a send Twilio accepted but never answered (timeout) goes out through Octopush with the same code', async () => {
    await stack.faults('twilio', { failNext: { count: 1, kind: 'accepted_timeout' } });
    const to = phone();
    const sent = await stack.send(to);
    expect(sent.status).toBe(202);
    const otp = await settled(sent.body.id, (o) => o.deliveryStatus === 'sent' && o.provider === 'octopush');
    // the attempts say what happened: Twilio's call timed out (it may or may not have sent), Octopush accepted
    expect(otp.attempts[0]).toMatchObject({ provider: 'twilio', outcome: 'retryable' });
    expect(otp.attempts.at(-1)).toMatchObject({ provider: 'octopush', outcome: 'accepted' });
    // the phone got both messages, and both carry the one code, which verifies
    const inbox = await eventually(async () => {
      const m = await stack.inbox(to);
      return m.length >= 2 ? m : undefined;
    }, 10_000);
    expect(inbox.map((m) => m.provider).sort()).toEqual(['octopush', 'twilio']);
    const codes = new Set(inbox.map((m) => codeIn(m.body)));
    expect(codes.size).toBe(1);
    const v = await stack.verify({ phoneNumber: to, code: [...codes][0]! });
    expect(v.status).toBe(200);
  });

  it('stops without failover when the number is invalid for the provider', async () => {
    await stack.faults('twilio', { failNext: { count: 1, kind: 'invalid_number' } });
    const to = phone();
    const sent = await stack.send(to);
    const otp = await settled(sent.body.id, (o) => o.status === 'failed');
    expect(otp.deliveryStatus).toBe('failed');
    expect(otp.attempts).toHaveLength(1);
    expect(otp.attempts[0]).toMatchObject({ provider: 'twilio', outcome: 'permanent', errorCode: '21211' });
    await new Promise((r) => setTimeout(r, 500));
    expect(await stack.inbox(to)).toHaveLength(0);
  });

  it('honours a 429 from Twilio without stalling Octopush', async () => {
    await stack.faults('twilio', { rateLimitRate: 1, retryAfterSeconds: 30 });
    const phones = Array.from({ length: 6 }, phone);
    const started = Date.now();
    const ids = await Promise.all(phones.map(async (p) => (await stack.send(p)).body.id as string));
    const otps = await Promise.all(ids.map((id) => settled(id, (o) => o.deliveryStatus === 'sent')));
    // Twilio asked for 30 s; everything went out through Octopush well before that.
    expect(Date.now() - started).toBeLessThan(10_000);
    for (const o of otps) expect(o.provider).toBe('octopush');
    // The pause is shared by all workers: once the first 429 is recorded, Twilio is not asked again (sends that
    // had picked it before, and were recorded a moment later, may have got their own 429), and no OTP asked it twice.
    const twilioAttempts = otps.flatMap((o) => o.attempts).filter((a: any) => a.provider === 'twilio');
    expect(twilioAttempts.length).toBeGreaterThan(0);
    for (const a of twilioAttempts) expect(a.outcome).toBe('rate_limited');
    const firstPause = Math.min(...twilioAttempts.map((a: any) => Date.parse(a.updatedAt)));
    for (const a of twilioAttempts) expect(Date.parse(a.at)).toBeLessThanOrEqual(firstPause + 1000);
    for (const o of otps) expect(o.attempts.filter((a: any) => a.provider === 'twilio').length).toBeLessThanOrEqual(1);
    expect(Number(await stack.redis.hget(circuitKey(stack.store.ks, 'twilio'), 'pausedUntil'))).toBeGreaterThan(
      Date.now() + 20_000,
    );
  });

  it('regression: a 429 without Retry-After pauses Twilio 1 s, then twice as long at the next one', async () => {
    await stack.faults('twilio', { rateLimitRate: 1, retryAfterSeconds: 0 });
    const circuit = async () => stack.redis.hgetall(circuitKey(stack.store.ks, 'twilio'));
    const viaOctopush = async () => {
      const id = (await stack.send(phone())).body.id as string;
      const otp = await settled(id, (o) => o.deliveryStatus === 'sent');
      expect(otp.provider).toBe('octopush');
      const refused = otp.attempts.filter((a: any) => a.provider === 'twilio');
      expect(refused).toEqual([expect.objectContaining({ outcome: 'rate_limited' })]);
      return Date.parse(refused[0].updatedAt);
    };
    const firstAt = await viaOctopush();
    const first = await circuit();
    expect(Number(first.lastPause)).toBe(1000);
    // paused from the 429 for the first pause (the worker's clock is the Redis node's, as the attempt's time)
    expect(Number(first.pausedUntil) - firstAt).toBeGreaterThanOrEqual(900);
    expect(Number(first.pausedUntil) - firstAt).toBeLessThanOrEqual(1100);
    // the pause is over by the Redis node's clock (the circuit's): within 2 s after it a new 429 doubles it
    const redisNow = async () => {
      const [sec, usec] = await stack.redis.time();
      return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    };
    await eventually(
      async () => ((await redisNow()) > Number(first.pausedUntil) ? true : undefined),
      5000,
      'pause over',
    );
    // once the pause is over Twilio is asked again, refuses again, and pauses twice as long
    await viaOctopush();
    expect(Number((await circuit()).lastPause)).toBe(2000);
  });

  it('loses nothing accepted during an outage of both providers: each code goes out once they are back, and verifies', async () => {
    await stack.faults('twilio', { down: true });
    await stack.faults('octopush', { down: true });
    const sends = await Promise.all(
      [phone(), phone(), phone(), phone(), phone()].map(async (to) => ({ to, ...(await stack.send(to)) })),
    );
    expect(sends.map((s) => s.status)).toEqual([202, 202, 202, 202, 202]);
    // every OTP meets the outage: each has tried both providers at least once
    for (const s of sends) {
      await settled(s.body.id, (o) => new Set(o.attempts.map((a: any) => a.provider)).size === 2);
    }
    expect(await stack.inbox()).toEqual([]);
    // both come back well within the OTPs' life (30 s)
    await stack.faults('twilio', { down: false });
    await stack.faults('octopush', { down: false });
    for (const s of sends) {
      const otp = await settled(s.body.id, (o) => o.deliveryStatus === 'sent', 25_000);
      expect(otp.status).toBe('pending');
      const inbox = await stack.inbox(s.to);
      // once: the failed tries sent nothing, and the one that got through is the only message
      expect(inbox).toHaveLength(1);
      expect(inbox[0]!.provider).toBe(otp.provider);
      const code = codeIn(inbox[0]!.body);
      expect(code).toMatch(/^\d{6}$/);
      expect((await stack.verify({ id: s.body.id, code: code! })).status).toBe(200);
    }
  }, 60_000);

  it('ends the OTP failed when both providers are down, and sends nothing later', async () => {
    await stack.faults('twilio', { down: true });
    await stack.faults('octopush', { down: true });
    const to = phone();
    const sent = await stack.send(to);
    // 30 s TTL is the shortest allowed; the worker gives up once no provider can send before expiry.
    const otp = await settled(sent.body.id, (o) => o.status === 'failed', 40_000);
    expect(otp.deliveryStatus).toBe('failed');
    expect(otp.attempts.length).toBeGreaterThanOrEqual(2);
    expect(new Set(otp.attempts.map((a: any) => a.provider))).toEqual(new Set(['twilio', 'octopush']));
    expect(Date.parse(otp.attempts.at(-1).updatedAt)).toBeLessThan(Date.parse(otp.expiresAt));
    // Providers come back: the failed OTP is not sent, and it cannot be verified.
    await fetch(`${stack.simUrl}/_sim/reset`, { method: 'POST' });
    await new Promise((r) => setTimeout(r, 1500));
    expect(await stack.inbox(to)).toHaveLength(0);
    const v = await stack.verify({ id: sent.body.id, code: '000000' });
    expect(v.body.error.code).toBe('otp_failed');
  }, 60_000);
});
