import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './support/processes.js';
import { codeIn, STACK_KEY, type Stack, startStack } from './support/stack.js';

/**
 * The abuse guards over real processes, with their default thresholds (written out: the test stack relaxes them
 * for the suites that send load on purpose). A pumping run and legitimate users at the same time, behind a proxy
 * (TRUST_PROXY=1) that forwards many client addresses.
 */
const DEFAULT_GUARDS = {
  GUARD_RANGE_DIGITS: '3',
  GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '20',
  GUARD_VELOCITY_COUNTRY_MAX_UNVERIFIED: '1000',
  GUARD_CONVERSION_RANGE_MIN_SENDS: '30',
  GUARD_CONVERSION_COUNTRY_MIN_SENDS: '300',
};
let stack: Stack;
const pid = String(process.pid % 1000).padStart(3, '0');

beforeAll(async () => {
  stack = await startStack({
    env: {
      ...DEFAULT_GUARDS,
      TRUST_PROXY: '1',
      OTP_ALLOWED_COUNTRIES: 'FR,BE,DE,ES,IT',
      GUARD_DAILY_SMS_PER_COUNTRY: 'ES=3,*=100000',
      // a spend budget for Italy: each SMS there is expected to cost 0.07 EUR through Twilio (the table's price)
      SMS_PRICES: 'twilio:IT=0.07',
      SMS_PRICE_CURRENCY: 'EUR',
      GUARD_DAILY_SPEND_PER_COUNTRY: 'IT=0.15',
      SIM_CALLBACK_DELAY_MS: '50',
    },
  });
});
afterAll(async () => {
  if (process.env.DEBUG_GUARDS) console.log(stack?.procs[1]?.output().slice(-4000));
  await stack?.stop();
});

const sendFrom = async (phoneNumber: string, ip: string) => {
  const r = await fetch(`${stack.apiUrl}/v1/otp/send`, {
    method: 'POST',
    headers: { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json', 'x-forwarded-for': ip },
    body: JSON.stringify({ phoneNumber }),
  });
  return { status: r.status, retryAfter: r.headers.get('retry-after'), body: (await r.json()) as any };
};

/** Send, read the SMS, verify: what a real user does. */
async function legitimateFlow(phoneNumber: string, ip: string): Promise<number[]> {
  const sent = await sendFrom(phoneNumber, ip);
  if (sent.status !== 202) return [sent.status];
  const sms = await eventually(async () => (await stack.inbox(phoneNumber)).at(-1), 15_000, `sms to ${phoneNumber}`);
  const verified = await stack.verify({ id: sent.body.id, code: codeIn(sms.body)! });
  return [sent.status, verified.status];
}

describe('abuse guards', () => {
  it('stop a pumping run on one range within a few dozen SMS, while legitimate users in several countries go on', async () => {
    const started = Date.now();
    // legitimate users: one every ~100 ms, random numbers in four allowed countries, each verifying its code
    const legit: Promise<number[]>[] = [];
    const countries = [
      () => `+3361${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`,
      () => `+32470${String(Math.floor(Math.random() * 1e6)).padStart(6, '0')}`,
      () => `+491512${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`,
      () => `+3378${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`,
    ];
    let stopLegit = false;
    const legitLoop = (async () => {
      // at least 12 flows, and on while the pumping run lasts (it may end within a second)
      for (let i = 0; i < 40 && (i < 12 || !stopLegit); i++) {
        legit.push(legitimateFlow(countries[i % countries.length]!(), `198.51.100.${i % 250}`));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    // the pumping run: 300 consecutive numbers of one range, 10 at a time, each from another client address
    const pumped = Array.from({ length: 300 }, (_, i) => `+3364${pid}1${String(i).padStart(3, '0')}`);
    const answers: Awaited<ReturnType<typeof sendFrom>>[] = [];
    for (let i = 0; i < pumped.length; i += 10) {
      answers.push(
        ...(await Promise.all(pumped.slice(i, i + 10).map((p, j) => sendFrom(p, `203.0.113.${(i + j) % 250}`)))),
      );
    }
    stopLegit = true;
    await legitLoop;
    const legitAnswers = await Promise.all(legit);

    const accepted = answers.filter((a) => a.status === 202).length;
    const refused = answers.filter((a) => a.status === 429);
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThanOrEqual(20);
    expect(refused).toHaveLength(300 - accepted);
    for (const r of refused) {
      expect(r.body.error.code).toBe('prefix_velocity');
      expect(r.body.error.message).toMatch(/prefix_velocity: .*without a verification/);
      expect(Number(r.retryAfter)).toBeGreaterThan(0);
    }
    // the SMS that actually went to the range: what the guard let through, no more
    const inRange = async () => (await stack.inbox()).filter((m) => m.to.startsWith(`+3364${pid}1`)).length;
    await eventually(async () => ((await inRange()) === accepted ? true : undefined), 20_000, 'pumped SMS sent');
    expect(await inRange()).toBe(accepted);

    // no legitimate user was refused anything
    expect(legitAnswers.length).toBeGreaterThanOrEqual(10);
    for (const a of legitAnswers) expect(a).toEqual([202, 200]);
    expect(Date.now() - started).toBeLessThan(90_000);

    // the refusals are counted and the block is shown, by guard and calling code
    const metrics = await (await fetch(`${stack.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`otp_api_refusals_total\\{code="prefix_velocity"\\} ${300 - accepted}\\b`));
    expect(metrics).toMatch(/otp_guard_blocks_active\{guard="prefix_velocity",cc="33"\} 1\b/);
    const api = stack.procs[1]!;
    const line = await api.waitForLog((l) => l.msg === 'send refused by an abuse guard');
    expect(line).toMatchObject({ code: 'prefix_velocity', reason: expect.stringContaining('without a verification') });
  }, 120_000);

  it("refuses past a country's daily budget while other countries go on", async () => {
    for (let i = 0; i < 3; i++) expect((await sendFrom(`+3461212${pid}${i}`, '192.0.2.1')).status).toBe(202);
    const refused = await sendFrom(`+3461212${pid}9`, '192.0.2.1');
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('country_budget_exhausted');
    expect(refused.body.error.message).toContain('3 SMS today, the daily budget is 3');
    const untilMidnight = Math.ceil((new Date().setUTCHours(24, 0, 0, 0) - Date.now()) / 1000);
    expect(Math.abs(Number(refused.retryAfter) - untilMidnight)).toBeLessThan(30);
    expect((await sendFrom(`+3367${pid}9999`, '192.0.2.1')).status).toBe(202);
  });

  it("refuses a send that would pass a country's daily spend budget, weighed at the price table's price", async () => {
    const it1 = `+39347${pid}0001`;
    const first = await sendFrom(it1, '192.0.2.3');
    expect(first.status).toBe(202);
    expect((await sendFrom(`+39347${pid}0002`, '192.0.2.3')).status).toBe(202);
    const refused = await sendFrom(`+39347${pid}0003`, '192.0.2.3');
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('country_budget_exhausted');
    expect(refused.body.error.message).toContain('0.14 EUR spent today, the daily budget is 0.15 EUR');
    // what the SMS cost is recorded on its attempt (Twilio's answer has no price here: the table's)
    const otp = await eventually(async () => {
      const o = await stack.otp(first.body.id);
      return o.attempts.some((a: any) => a.outcome === 'accepted' || a.outcome === 'delivered') ? o : undefined;
    });
    expect(otp.attempts.at(-1)).toMatchObject({ provider: 'twilio', cost: 0.07, currency: 'EUR' });
  });

  it('refuses number types that bill the sender or cannot receive an SMS with 400 number_type_not_allowed', async () => {
    for (const n of ['+33899123456', '+33123456789', '+33800123456']) {
      const r = await sendFrom(n, '192.0.2.2');
      expect({ status: r.status, code: r.body.error.code }).toEqual({ status: 400, code: 'number_type_not_allowed' });
    }
  });
});
