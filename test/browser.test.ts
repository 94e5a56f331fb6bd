import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvReader, readGuardsConfig } from '../packages/core/src/index.js';
import {
  createSendGuards,
  createSendQueues,
  enqueueSend,
  type RedisClient,
  type SendGuards,
  type SendQueues,
} from '../packages/store/src/index.js';
import { type AppProcess, startApp, waitForHttp } from './support/processes.js';
import { closeRedisClients, isolatedRedis } from './support/redis.js';
import { freePort } from './support/redis-server.js';

/** Debian's Chromium (scripts/ensure-browser.sh installs it); no browser is downloaded by a test tool. */
const CHROMIUM = '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps trying hosts this closed network refuses.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Set OTP_SCREENSHOT_DIR to keep screenshots of what the browser saw. */
const SHOTS = process.env.OTP_SCREENSHOT_DIR;

const USER = 'admin';
const PASSWORD = 'correct-horse-battery';

let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run bash scripts/ensure-browser.sh (apt-get install -y chromium)`);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
});

async function shot(page: Page, name: string) {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

describe('dashboard in a browser', () => {
  let admin: RedisClient;
  let queues: SendQueues;
  let guards: SendGuards;
  let dashboard: AppProcess;
  let base: string;
  // Partition 000: the job is on shard 0, whatever the number of shards.
  const otpId = `otp_000b0a5e${'1'.repeat(24)}`;

  beforeAll(async () => {
    const isolated = await isolatedRedis();
    admin = isolated.redis;
    const sendShards = Number(isolated.env.SEND_QUEUE_SHARDS ?? 1);
    queues = createSendQueues(admin, isolated.ks, { sendShards, keepCompleted: 10, keepFailedSeconds: 60 });
    await enqueueSend(queues, otpId);
    // the API's guards on the same store, strict enough that two unverified sends block a range
    guards = createSendGuards(
      admin,
      isolated.ks,
      readGuardsConfig(new EnvReader({ GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '2' }), []),
    );
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    dashboard = startApp('dashboard', {
      ...isolated.env,
      DASHBOARD_USER: USER,
      DASHBOARD_PASSWORD: PASSWORD,
      DASHBOARD_PORT: String(port),
    });
    await dashboard.waitForLog((l) => l.msg === 'dashboard started');
  });

  afterAll(async () => {
    await dashboard?.stop();
    await queues?.close();
    await closeRedisClients(admin);
  });

  it('logs in with the dashboard credentials and shows the otp-send queues with the job', async () => {
    const context = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD } });
    try {
      const page = await context.newPage();
      const res = await page.goto(`${base}/admin/queues`);
      expect(res?.status()).toBe(200);
      await page.getByText('otp-send').first().waitFor({ timeout: 15_000 });
      await page.getByText('Loading...').waitFor({ state: 'detached', timeout: 15_000 });
      await shot(page, 'dashboard-overview');

      await page.goto(`${base}/admin/queues/queue/otp-send-0?status=waiting`);
      await page.getByText(otpId).first().waitFor({ timeout: 15_000 });
      await shot(page, 'dashboard-queue');
    } finally {
      await context.close();
    }
  });

  it('lists an active guard block with its reason, and an operator lifts it (a forged POST is refused)', async () => {
    const target = (n: number) => ({
      keyName: 'shop',
      phoneNumber: `+3361234${n}00`,
      country: 'FR',
      callingCode: '33',
    });
    await guards.send(target(1));
    await guards.send(target(2));
    expect(await guards.send(target(3))).toMatchObject({ kind: 'refused', code: 'prefix_velocity' });

    // without the page's token, or from another origin, a lift is refused even with the credentials
    const auth = { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` };
    const [id] = (await guards.blocks()).map((b) => b.id);
    const forged = await fetch(`${base}/admin/guards/lift`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example' },
      body: new URLSearchParams({ id: id!, csrf: 'guess' }).toString(),
    });
    expect(forged.status).toBe(403);

    const context = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD } });
    try {
      const page = await context.newPage();
      expect((await page.goto(`${base}/admin/guards`))?.status()).toBe(200);
      const row = page.locator('tr', { hasText: '+3361234xxx' });
      await row.getByText('prefix_velocity').waitFor({ timeout: 5_000 });
      expect(await row.textContent()).toContain('2 codes sent without a verification after them (limit 2)');
      await shot(page, 'dashboard-guards');
      await row.getByRole('button', { name: 'Lift' }).click();
      await page.getByText('Block lifted.').waitFor({ timeout: 5_000 });
      await page.getByText('No active block.').waitFor({ timeout: 5_000 });
    } finally {
      await context.close();
    }
    expect(await guards.blocks()).toEqual([]);
    expect((await guards.send(target(4))).kind).toBe('ok');
    // the line reaches this process through a pipe, maybe a moment after the page showed the result
    await dashboard.waitForLog((l) => l.msg === 'dashboard operator lifted a guard block', 5_000);
  });

  it('refuses a wrong password with 401', async () => {
    const context = await browser.newContext({ httpCredentials: { username: USER, password: 'wrong-password-123' } });
    try {
      const page = await context.newPage();
      const res = await page.goto(`${base}/admin/queues`);
      expect(res?.status()).toBe(401);
      expect(await page.content()).not.toContain('otp-send');
      await shot(page, 'dashboard-wrong-password');
    } finally {
      await context.close();
    }
  });
});

describe('simulator inbox in a browser', () => {
  const ACCOUNT_SID = 'ACbrowser0test000000000000000000000';
  const AUTH_TOKEN = 'browser-test-twilio-auth-token00';
  let simulator: AppProcess;
  let base: string;

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    simulator = startApp('simulator', {
      SIMULATOR_PORT: String(port),
      SIM_TWILIO_ACCOUNT_SID: ACCOUNT_SID,
      SIM_TWILIO_AUTH_TOKEN: AUTH_TOKEN,
    });
    await waitForHttp(`${base}/inbox`);
  });

  afterAll(async () => {
    await simulator?.stop();
  });

  it('shows a message sent through the fake Twilio API arrive on the open inbox page', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${base}/inbox`);
      await page.getByText('No messages yet.').first().waitFor({ timeout: 5_000 });

      const res = await fetch(`${base}/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ To: '+33699887766', From: '+15005550006', Body: 'Your code is 731904' }),
      });
      expect(res.status).toBe(201);

      // The page refreshes itself: the message appears without the test reloading it.
      await page.getByText('Your code is 731904').first().waitFor({ timeout: 10_000 });
      await page.getByText('+33699887766').first().waitFor({ timeout: 5_000 });
      await shot(page, 'simulator-inbox');
    } finally {
      await context.close();
    }
  });
});
