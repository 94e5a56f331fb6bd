import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

const sendFrom = async (phoneNumber: string, ip: string, on: Stack = stack) => {
  const r = await fetch(`${on.apiUrl}/v1/otp/send`, {
    method: 'POST',
    headers: { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json', 'x-forwarded-for': ip },
    body: JSON.stringify({ phoneNumber }),
  });
  return { status: r.status, retryAfter: r.headers.get('retry-after'), body: (await r.json()) as any };
};

/** Send, read the SMS, verify: what a real user does. */
async function legitimateFlow(phoneNumber: string, ip: string, on: Stack = stack): Promise<number[]> {
  const sent = await sendFrom(phoneNumber, ip, on);
  if (sent.status !== 202) return [sent.status];
  const sms = await eventually(async () => (await on.inbox(phoneNumber)).at(-1), 15_000, `sms to ${phoneNumber}`);
  const verified = await on.verify({ id: sent.body.id, code: codeIn(sms.body)! });
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

/**
 * The conversion watch over real processes, with thresholds small enough for a test and its shortest window, 120 s:
 * buckets of 10 s. The sends of the newest bucket are not judged (their codes may still be on their way to being
 * typed), so each test waits, on the Redis clock the guards read, for the bucket of its last send to pass. Each
 * sends exactly the minimum of judged sends: a bucket that ends halfway leaves fewer judged, never an early refusal.
 */
describe('conversion watch', () => {
  let conv: Stack;
  /**
   * Test numbers of the stack's key (TENANTS_FILE) in one Italian range: a fixed code, never sent to a provider
   * (Italy: no other test here sends there, so no country judgement gets in the way).
   */
  const testRange = `+39347${pid}4`;
  const testNumbers = Array.from({ length: 6 }, (_, i) => `${testRange}9${String(i).padStart(2, '0')}`);
  beforeAll(async () => {
    const tenants = join(mkdtempSync(join(tmpdir(), 'otp-guards-')), 'tenants.yaml');
    writeFileSync(
      tenants,
      `keys:\n  test:\n    secret: ${STACK_KEY}\n    testNumbers:\n${testNumbers
        .map((n) => `      "${n}": { code: "123456", outcome: delivered }\n`)
        .join('')}`,
    );
    conv = await startStack({
      env: {
        TENANTS_FILE: tenants,
        TRUST_PROXY: '1',
        OTP_ALLOWED_COUNTRIES: 'FR,BE,DE,IT',
        GUARD_RANGE_DIGITS: '3',
        // the velocity guard out of the way: this is about the share of codes verified
        GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '1000',
        GUARD_VELOCITY_COUNTRY_MAX_UNVERIFIED: '1000',
        GUARD_CONVERSION_WINDOW_SECONDS: '120',
        GUARD_CONVERSION_RANGE_MIN_SENDS: '6',
        GUARD_CONVERSION_COUNTRY_MIN_SENDS: '12',
        GUARD_CONVERSION_MIN_PERCENT: '50',
        GUARD_CONVERSION_THROTTLE_SECONDS: '60',
        SIM_CALLBACK_DELAY_MS: '50',
      },
    });
  });
  afterAll(async () => conv?.stop());

  const BUCKET_MS = 10_000;
  const redisNow = async () => {
    const [s, us] = await conv.redis.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  };
  /** Waits until the bucket running now has passed: every send made so far is judged. */
  const judgedFromNow = async () => {
    const bucket = Math.floor((await redisNow()) / BUCKET_MS);
    while (Math.floor((await redisNow()) / BUCKET_MS) === bucket) await new Promise((r) => setTimeout(r, 100));
  };
  const counted = async (code: string) => {
    const metrics = await (await fetch(`${conv.apiUrl}/metrics`)).text();
    return Number(new RegExp(`otp_api_refusals_total\\{code="${code}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
  };
  const refusedLines = () =>
    conv.procs[1]!.logs().filter((l) => l.msg === 'send refused by an abuse guard' && l.code === 'low_conversion');

  it('throttles a range whose codes are never verified: 429 low_conversion with Retry-After, saying why', async () => {
    const before = await counted('low_conversion');
    const range = `+3364${pid}2`;
    for (let i = 0; i < 6; i++) {
      expect((await sendFrom(`${range}${String(i).padStart(3, '0')}`, `203.0.113.${i}`, conv)).status).toBe(202);
    }
    await judgedFromNow();
    // judged now, none approved: throttled, not closed; one send goes per GUARD_CONVERSION_THROTTLE_SECONDS
    expect((await sendFrom(`${range}100`, '203.0.113.10', conv)).status).toBe(202);
    const refused = await sendFrom(`${range}101`, '203.0.113.11', conv);
    expect(refused.status).toBe(429);
    expect(refused.body.error).toEqual({
      code: 'low_conversion',
      message:
        'low_conversion: too few codes sent there are verified; sends there are throttled (0 approved of 6 codes sent, under 50%)',
    });
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(60);
    // another range of the same country goes on
    expect((await sendFrom(`+3364${pid}3000`, '203.0.113.12', conv)).status).toBe(202);

    expect(await counted('low_conversion')).toBe(before + 1);
    expect(refusedLines().at(-1)).toMatchObject({ level: 40, reason: refused.body.error.message });
    const metrics = await (await fetch(`${conv.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(/otp_guard_blocks_active\{guard="low_conversion",cc="33"\} 1\b/);
  });

  it("regression: a test number's approvals do not count for its range: the range's unverified codes are throttled", async () => {
    // six approvals nobody paid for: test numbers with a known code (their sends skip the guards)
    for (const [i, n] of testNumbers.entries()) {
      const sent = await sendFrom(n, `203.0.113.${40 + i}`, conv);
      expect(sent.status).toBe(202);
      expect((await conv.verify({ id: sent.body.id, code: '123456' })).status).toBe(200);
    }
    for (let i = 0; i < 6; i++) {
      expect((await sendFrom(`${testRange}${String(i).padStart(3, '0')}`, `203.0.113.${50 + i}`, conv)).status).toBe(
        202,
      );
    }
    await judgedFromNow();
    expect((await sendFrom(`${testRange}100`, '203.0.113.60', conv)).status).toBe(202);
    const refused = await sendFrom(`${testRange}101`, '203.0.113.61', conv);
    expect(refused.status).toBe(429);
    expect(refused.body.error.message).toContain('(0 approved of 6 codes sent, under 50%)');
  });

  it("throttles a country whose codes are never verified across its ranges, while another country's verified codes go on", async () => {
    const before = await counted('low_conversion');
    // 12 codes to Belgium over four ranges (3 each, under the range minimum of 6), none verified; 12 to Germany,
    // each verified
    const be = (r: number, i: number) => `+3247${r}${pid}${String(i).padStart(3, '0')}`;
    for (let r = 1; r <= 4; r++) {
      for (let i = 0; i < 3; i++) expect((await sendFrom(be(r, i), `198.51.100.${r * 10 + i}`, conv)).status).toBe(202);
    }
    const de = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        legitimateFlow(`+491512${pid}${String(i).padStart(4, '0')}`, '192.0.2.7', conv),
      ),
    );
    for (const flow of de) expect(flow).toEqual([202, 200]);
    await judgedFromNow();

    // the first send after the judgement goes and starts the throttle; the next ones, in any range of Belgium, wait
    expect((await sendFrom(be(5, 0), '198.51.100.100', conv)).status).toBe(202);
    const refused = await Promise.all(
      [be(6, 0), be(7, 0), be(1, 999)].map((n, i) => sendFrom(n, `198.51.100.${110 + i}`, conv)),
    );
    for (const r of refused) {
      expect(r.status).toBe(429);
      expect(r.body.error.code).toBe('low_conversion');
      expect(r.body.error.message).toContain('(0 approved of 12 codes sent, under 50%)');
      expect(Number(r.retryAfter)).toBeGreaterThan(0);
    }
    // Germany, judged too (12 approved of 12), goes on
    for (let i = 0; i < 3; i++) {
      expect((await sendFrom(`+491512${pid}${String(100 + i).padStart(4, '0')}`, '192.0.2.7', conv)).status).toBe(202);
    }

    expect(await counted('low_conversion')).toBe(before + 3);
    expect(refusedLines().filter((l) => String(l.reason).includes('of 12 codes sent'))).toHaveLength(3);
    const metrics = await (await fetch(`${conv.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(/otp_guard_blocks_active\{guard="low_conversion",cc="32"\} 1\b/);
  });
});
