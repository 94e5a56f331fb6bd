import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppProcess, eventually, startApp, waitForHttp } from './support/processes.js';
import { freePort } from './support/redis-server.js';
import { type Stack, startStack } from './support/stack.js';
import { startWebhookReceiver, type WebhookReceiver } from './support/webhook-receiver.js';

// Real processes with TENANTS_FILE: two keys with their own templates, brands and webhook endpoints; reloads.
const ALPHA = 'alpha-secret-0123456789abcdef';
const BETA = 'beta-secret-0123456789abcdefgh';
const GAMMA = 'gamma-secret-0123456789abcdefg';
const DELTA = 'delta-secret-0123456789abcdefg';
const WH_ALPHA = `whsec_${Buffer.from('tenant-alpha-webhook-secret-012345').toString('base64')}`;
const WH_BETA = `whsec_${Buffer.from('tenant-beta-webhook-secret-0123456').toString('base64')}`;

const TEST_DELIVERED = '+33612000001';
const TEST_UNDELIVERED = '+33612000002';
const TEST_SILENT = '+33612000003';

let stack: Stack;
let hookA: WebhookReceiver;
let hookB: WebhookReceiver;
let file: string;
let n = 0;
const phone = () => `+3362${String(process.pid % 100).padStart(2, '0')}${String(++n).padStart(5, '0')}`;

const yaml = (alphaTemplate: string, withAlpha = true, alphaCodeLength = 6) => `
keys:
${
  withAlpha
    ? `  alpha:
    secret: ${ALPHA}
    brand: AlphaShop
    codeLength: ${alphaCodeLength}
    templates:
      en: "${alphaTemplate}"
    webhook:
      url: ${hookA.url}
      secrets: [${WH_ALPHA}]
`
    : ''
}  beta:
    secretSha256: ${createHash('sha256').update(BETA).digest('hex')}
    brand: BetaBank
    sender: BetaBank
    codeLength: 8
    webhook:
      url: ${hookB.url}
      secrets: ${WH_BETA}
    testNumbers:
      "${TEST_DELIVERED}": { code: "12345678", outcome: delivered }
      "${TEST_UNDELIVERED}": { outcome: undelivered }
      "${TEST_SILENT}": { outcome: no_receipt }
  gamma:
    secret: ${GAMMA}
    sender: Gamma Shop
    routes:
      FR: [octopush, twilio]
      "*": [twilio]
    budgets: { dailySms: 2 }
  delta:
    secret: ${DELTA}
    routes:
      FR: [octopush]
    budgets: { dailySpend: 0.08 }
`;

beforeAll(async () => {
  [hookA, hookB] = await Promise.all([startWebhookReceiver(), startWebhookReceiver()]);
  file = join(mkdtempSync(join(tmpdir(), 'otp-tenants-')), 'tenants.yaml');
  writeFileSync(file, yaml('ALPHA {code} ({minutes} min)'));
  stack = await startStack({
    env: {
      TENANTS_FILE: file,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      // what a key's sends are weighed at against its spend budget: the price of the route they take
      SMS_PRICES: 'twilio:*=0.01,octopush:*=0.05',
    },
  });
});
afterAll(async () => {
  await stack?.stop();
  await Promise.all([hookA?.close(), hookB?.close()]);
});

const send = (secret: string, phoneNumber: string) =>
  fetch(`${stack.apiUrl}/v1/otp/send`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({ phoneNumber }),
  });
const smsTo = (to: string) => eventually(async () => (await stack.inbox(to))[0]?.body, 15_000, 'sms');
const proc = (name: string) => stack.procs.find((p) => p.name === name) as AppProcess;
const hup = async (msg: RegExp) => {
  const count = (name: string) =>
    proc(name)
      .logs()
      .filter((l) => msg.test(String(l.msg))).length;
  const before = { api: count('api'), worker: count('worker') };
  for (const name of ['api', 'worker'] as const) proc(name).child.kill('SIGHUP');
  for (const name of ['api', 'worker'] as const) {
    await eventually(async () => (count(name) > before[name] ? true : undefined), 15_000, `${name} ${msg}`);
  }
};

describe('settings per API key (TENANTS_FILE)', () => {
  it('two keys get their own template, brand, code length and webhook endpoint; API_KEYS keys still work', async () => {
    const a = phone();
    const b = phone();
    const ra = await send(ALPHA, a);
    const rb = await send(BETA, b);
    expect([ra.status, rb.status]).toEqual([202, 202]);
    const idA = ((await ra.json()) as { id: string }).id;
    const idB = ((await rb.json()) as { id: string }).id;
    expect(await smsTo(a)).toMatch(/^ALPHA \d{6} \((9|10) min\)$/);
    expect(await smsTo(b)).toMatch(/^BetaBank: Your verification code is \d{8}\./);
    // its own sender; the other key the provider's configured one
    expect((await stack.inbox(b))[0]?.from).toBe('BetaBank');
    expect((await stack.inbox(a))[0]?.from).toBe('+15005550006');
    await eventually(async () => (hookA.about(idA).length && hookB.about(idB).length ? true : undefined), 15_000);
    expect(hookA.about(idB)).toEqual([]);
    expect(hookB.about(idA)).toEqual([]);
    expect(new Webhook(WH_ALPHA).verify(hookA.about(idA)[0]!.body, hookA.about(idA)[0]!.headers)).toBeTruthy();
    expect(new Webhook(WH_BETA).verify(hookB.about(idB)[0]!.body, hookB.about(idB)[0]!.headers)).toBeTruthy();
    expect((await stack.send(phone())).status).toBe(202);
  });

  it('SIGHUP reload: a changed template applies to the next send; a broken file changes nothing', async () => {
    writeFileSync(file, yaml('ALPHA2 {code}'));
    await hup(/reloaded/);
    const a = phone();
    expect((await send(ALPHA, a)).status).toBe(202);
    expect(await smsTo(a)).toMatch(/^ALPHA2 \d{6}$/);

    writeFileSync(file, yaml('no code here'));
    await hup(/not reloaded/);
    const a2 = phone();
    expect((await send(ALPHA, a2)).status).toBe(202);
    expect(await smsTo(a2)).toMatch(/^ALPHA2 \d{6}$/);
    const line = proc('api')
      .logs()
      .find((l) => /not reloaded/.test(String(l.msg)));
    expect(JSON.stringify(line?.problems)).toMatch(/TENANTS_FILE key alpha: template en must contain \{code\}/);
  });

  it("regression: a code sent before a reload changed its key's code length still verifies; new codes have the new length", async () => {
    const verify = async (id: string, code: string) => {
      const r = await fetch(`${stack.apiUrl}/v1/otp/verify`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ALPHA}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id, code }),
      });
      return { status: r.status, body: (await r.json()) as any };
    };
    const a = phone();
    const sent = (await (await send(ALPHA, a)).json()) as { id: string };
    const code = /\d{6}/.exec(String(await smsTo(a)))![0];
    writeFileSync(file, yaml('ALPHA {code}', true, 8));
    try {
      await hup(/reloaded/);
      // malformed for this OTP (it has 6 digits): refused, nothing counted; its own code approves (it said 400 before)
      expect(await verify(sent.id, `${code}00`)).toMatchObject({
        status: 400,
        body: { error: { code: 'invalid_code_format', message: 'code must be 6 digits' } },
      });
      expect((await verify(sent.id, code)).status).toBe(200);
      const b = phone();
      const next = (await (await send(ALPHA, b)).json()) as { id: string };
      expect(await smsTo(b)).toMatch(/^ALPHA \d{8}$/);
      expect(await verify(next.id, '123456')).toMatchObject({
        status: 400,
        body: { error: { code: 'invalid_code_format' } },
      });
    } finally {
      // the next tests expect alpha's 6 digits
      writeFileSync(file, yaml('ALPHA {code} ({minutes} min)'));
      await hup(/reloaded/);
    }
  });

  it('test numbers: a fixed code approves, nothing reaches the simulator, undelivered fails over', async () => {
    const get = async (id: string) =>
      (await (
        await fetch(`${stack.apiUrl}/v1/otp/${id}`, { headers: { authorization: `Bearer ${BETA}` } })
      ).json()) as any;
    const until = (id: string, pred: (o: any) => boolean) =>
      eventually(async () => {
        const o = await get(id);
        return pred(o) ? o : undefined;
      }, 15_000);
    const idOf = async (to: string) => {
      const r = await send(BETA, to);
      expect(r.status).toBe(202);
      return ((await r.json()) as { id: string }).id;
    };
    const delivered = await idOf(TEST_DELIVERED);
    const undelivered = await idOf(TEST_UNDELIVERED);
    const silent = await idOf(TEST_SILENT);
    await until(delivered, (o) => o.deliveryStatus === 'delivered');
    const verify = await fetch(`${stack.apiUrl}/v1/otp/verify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${BETA}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: delivered, code: '12345678' }),
    });
    expect(verify.status).toBe(200);
    const failedOver = await until(undelivered, (o) => o.deliveryStatus === 'delivered');
    expect(failedOver.attempts).toEqual([
      expect.objectContaining({ n: 1, outcome: 'undelivered', messageId: `test-${undelivered}-1` }),
      expect.objectContaining({ n: 2, outcome: 'delivered', messageId: `test-${undelivered}-2` }),
    ]);
    expect(failedOver.attempts[0].provider).not.toBe(failedOver.attempts[1].provider);
    const quiet = await until(silent, (o) => o.deliveryStatus === 'sent');
    expect(quiet.attempts).toHaveLength(1);
    for (const to of [TEST_DELIVERED, TEST_UNDELIVERED, TEST_SILENT]) expect(await stack.inbox(to)).toEqual([]);
    await eventually(
      async () => (hookB.about(delivered).some((r) => r.json.type === 'otp.approved') ? true : undefined),
      15_000,
    );
  });

  it('TEST_NUMBERS_ENABLED=false: a test number is sent like any number', async () => {
    writeFileSync(file, yaml('ALPHA2 {code}')); // the previous test left a broken file
    const port = await freePort();
    const api = startApp('api', { ...stack.env, API_PORT: String(port), TEST_NUMBERS_ENABLED: 'false' });
    try {
      await waitForHttp(`http://127.0.0.1:${port}/healthz`);
      const r = await fetch(`http://127.0.0.1:${port}/v1/otp/send`, {
        method: 'POST',
        headers: { authorization: `Bearer ${BETA}`, 'content-type': 'application/json' },
        body: JSON.stringify({ phoneNumber: TEST_SILENT }),
      });
      expect(r.status).toBe(202);
      expect(await smsTo(TEST_SILENT)).toMatch(/^BetaBank: Your verification code is \d{8}\./);
    } finally {
      await api.stop();
    }
  });

  it("a key's own routes and daily budget: its FR codes go through Octopush first, its third SMS of the day is refused", async () => {
    const fr = phone();
    const r = await send(GAMMA, fr);
    expect(r.status).toBe(202);
    await smsTo(fr);
    // regression: its sender (a space: Twilio takes it, Octopush not) made Octopush refuse every send (code 106),
    // skipped as misconfigured; OCTOPUSH_SENDER goes out instead, and the worker says so at start
    expect((await stack.inbox(fr))[0]).toMatchObject({ provider: 'octopush', from: 'OTP' });
    expect(
      stack.workers[0]!.logs().some(
        (l) => String(l.msg).startsWith('key sender not taken by octopush') && l.key === 'gamma',
      ),
    ).toBe(true);
    // the gateway-wide order (SMS_PROVIDERS twilio,octopush) for the stack's own key
    const other = phone();
    expect((await stack.send(other)).status).toBe(202);
    await smsTo(other);
    expect((await stack.inbox(other))[0]?.provider).toBe('twilio');
    // its `*` route: a Belgian number through Twilio
    expect((await send(GAMMA, '+32470123456')).status).toBe(202);
    const third = await send(GAMMA, phone());
    expect(third.status).toBe(429);
    const body = (await third.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('key_budget_exhausted');
    expect(body.error.message).toContain('2 SMS today, the daily budget is 2');
    await smsTo('+32470123456');
    expect((await stack.inbox('+32470123456'))[0]).toMatchObject({ provider: 'twilio', from: 'Gamma Shop' });
  });

  it("a key's spend budget weighs its sends at its own route's price: Octopush's 0.05 for FR, not Twilio's 0.01", async () => {
    const first = phone();
    expect((await send(DELTA, first)).status).toBe(202);
    const second = await send(DELTA, phone());
    expect(second.status).toBe(429);
    const body = (await second.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('key_budget_exhausted');
    expect(body.error.message).toContain('0.05 EUR spent today, the daily budget is 0.08 EUR');
    await smsTo(first);
    expect((await stack.inbox(first))[0]?.provider).toBe('octopush');
  });

  it('a key removed from the file is refused after the reload', async () => {
    writeFileSync(file, yaml('', false));
    await hup(/reloaded/);
    expect((await send(ALPHA, phone())).status).toBe(401);
    expect((await send(BETA, phone())).status).toBe(202);
  });

  it('a bad file refuses the start, naming every problem', async () => {
    const bad = join(mkdtempSync(join(tmpdir(), 'otp-tenants-')), 'tenants.json');
    writeFileSync(
      bad,
      JSON.stringify({ keys: { shop: { secret: 'short', ttlSeconds: 5, colour: 'red' }, 'bad name': {} } }),
    );
    const p = startApp('api', { ...stack.env, TENANTS_FILE: bad });
    const code = await new Promise<number | null>((r) => p.child.once('exit', (c) => r(c)));
    expect(code).toBe(78);
    const out = p.output();
    for (const m of [
      /key shop: unknown setting "colour"/,
      /key shop: secret must be at least 16/,
      /key shop: ttlSeconds/,
      /key bad name: the name/,
    ]) {
      expect(out).toMatch(m);
    }
  });

  it('regression: the worker refuses a spend budget that would never apply, as the API does (it started with it)', async () => {
    const unpriced = join(mkdtempSync(join(tmpdir(), 'otp-tenants-')), 'tenants.yaml');
    writeFileSync(unpriced, `keys:\n  shop:\n    secret: shop-secret-0123456789\n    budgets: { dailySpend: 5 }\n`);
    for (const app of ['api', 'worker']) {
      const p = startApp(app, { ...stack.env, TENANTS_FILE: unpriced, SMS_PRICES: '' });
      try {
        const code = await Promise.race([
          new Promise<number | null>((r) => p.child.once('exit', (c) => r(c))),
          new Promise<string>((r) => setTimeout(() => r('still running after 15 s'), 15_000)),
        ]);
        expect({ app, code }).toEqual({ app, code: 78 });
        expect(p.output()).toMatch(/key shop: budgets.dailySpend would never apply/);
      } finally {
        await p.stop('SIGKILL');
      }
    }
  });
});
