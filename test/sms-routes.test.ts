import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './support/processes.js';
import { freePort } from './support/redis-server.js';
import { codeIn, type Stack, startStack } from './support/stack.js';

// SMS_ROUTES over real processes: the provider order is the destination country's.
let stack: Stack;
let metricsPort = 0;
let n = 0;
const tail = () => `${String(process.pid % 1000).padStart(3, '0')}${String(++n).padStart(4, '0')}`;
const fr = () => `+3367${tail()}`;
const de = () => `+491512${tail()}`;

beforeAll(async () => {
  metricsPort = await freePort();
  stack = await startStack({
    env: { SMS_ROUTES: 'FR=octopush,twilio;BE=octopush,twilio;*=twilio,octopush', OTP_TTL_SECONDS: '60' },
    workerEnv: {
      CIRCUIT_FAILURE_THRESHOLD: '50',
      WORKER_METRICS_PORT: String(metricsPort),
      SMS_PRICES: 'twilio:FR=0.07,twilio:*=0.05,octopush:FR=0.04',
      SMS_PRICE_CURRENCY: 'EUR',
      // Twilio tells a message's price after the send: asked 2 s after it, then 2 s after that (BullMQ's backoff)
      COST_CHECK_DELAY_SECONDS: '2',
      COST_CHECK_ATTEMPTS: '2',
    },
  });
});
afterAll(async () => stack?.stop());

const sentVia = (id: string) =>
  eventually(
    async () => {
      const otp = await stack.otp(id);
      return otp.deliveryStatus === 'sent' ? otp : undefined;
    },
    15_000,
    `otp ${id} sent`,
  );

describe('SMS_ROUTES', () => {
  it('sends a French number through Octopush first and a German one through Twilio first', async () => {
    const [a, b] = [fr(), de()];
    const [sa, sb] = await Promise.all([stack.send(a), stack.send(b)]);
    expect([sa.status, sb.status]).toEqual([202, 202]);
    expect((await sentVia(sa.body.id)).provider).toBe('octopush');
    expect((await sentVia(sb.body.id)).provider).toBe('twilio');
    expect((await stack.inbox(a)).map((m) => m.provider)).toEqual(['octopush']);
    expect((await stack.inbox(b)).map((m) => m.provider)).toEqual(['twilio']);
  });

  const costMetric = async (provider: string, cc: string, currency: string) => {
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const re = new RegExp(
      `otp_sms_cost_total\\{provider="${provider}",cc="${cc}",currency="${currency}"\\} ([0-9.e-]+)`,
    );
    return Number(re.exec(metrics)?.[1] ?? 0);
  };
  const lastAttempt = async (id: string) => (await stack.otp(id)).attempts.at(-1);

  it("records each attempt's cost: Octopush's total_cost at once, Twilio's price once its message resource has it", async () => {
    const [a, b] = [fr(), de()];
    const [sa, sb] = await Promise.all([stack.send(a), stack.send(b)]);
    const viaOctopush = await sentVia(sa.body.id);
    const viaTwilio = await sentVia(sb.body.id);
    // the simulator answers total_cost 0.045 per segment, as Octopush does; the table's 0.04 is not used then
    expect(viaOctopush.attempts.at(-1)).toMatchObject({ provider: 'octopush', cost: 0.045, currency: 'EUR' });
    // Twilio's create answer has no price yet: the table's stands on the attempt until the provider tells
    expect(viaTwilio.attempts.at(-1)).toMatchObject({ provider: 'twilio', cost: 0.05, currency: 'EUR' });
    const told = await eventually(
      async () => {
        const last = await lastAttempt(sb.body.id);
        return last?.currency === 'USD' ? last : undefined;
      },
      15_000,
      'the price Twilio tells',
    );
    // the simulated Twilio charges 0.0079 USD a segment once the message went out
    expect(told).toMatchObject({ provider: 'twilio', cost: 0.0079, currency: 'USD' });
    expect(await costMetric('octopush', '33', 'EUR')).toBeGreaterThanOrEqual(0.045 * 2);
    // both German codes so far went through Twilio (the first test's too, checked 2 s after its send): each is
    // counted once, at the price Twilio told, never at the table's
    await eventually(
      async () => ((await costMetric('twilio', '49', 'USD')) >= 0.0079 * 2 - 1e-9 ? true : undefined),
      15_000,
      'twilio cost counted',
    );
    expect(await costMetric('twilio', '49', 'USD')).toBeCloseTo(0.0079 * 2, 6);
    expect(await costMetric('twilio', '49', 'EUR')).toBe(0);
  });

  it("keeps the price table's cost when Twilio never tells it, and counts it then", async () => {
    const sent = await stack.send(de());
    await sentVia(sent.body.id);
    // down before the first check (2 s after the send): both checks find no answer
    await stack.faults('twilio', { down: true });
    try {
      await eventually(
        async () => ((await costMetric('twilio', '49', 'EUR')) > 0 ? true : undefined),
        20_000,
        'the table cost counted',
      );
      expect(await costMetric('twilio', '49', 'EUR')).toBeCloseTo(0.05, 6);
      expect(await lastAttempt(sent.body.id)).toMatchObject({ provider: 'twilio', cost: 0.05, currency: 'EUR' });
    } finally {
      await stack.faults('twilio', { down: false });
    }
  });

  it('with Octopush down, the French code still arrives, through Twilio, and verifies', async () => {
    await stack.faults('octopush', { down: true });
    try {
      const to = fr();
      const sent = await stack.send(to);
      const otp = await sentVia(sent.body.id);
      expect(otp.provider).toBe('twilio');
      expect(otp.attempts[0]).toMatchObject({ provider: 'octopush' });
      const inbox = await stack.inbox(to);
      expect(inbox.map((m) => m.provider)).toEqual(['twilio']);
      expect((await stack.verify({ id: sent.body.id, code: codeIn(inbox[0]!.body)! })).status).toBe(200);
    } finally {
      await stack.faults('octopush', { down: false });
    }
  });
});
