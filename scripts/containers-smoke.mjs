// The HTTP side of scripts/test-containers.sh: talks to the compose stack through its published ports only.
//   node scripts/containers-smoke.mjs ready       every published service answers /readyz (simulator /healthz)
//   node scripts/containers-smoke.mjs otp         send an OTP, read its code in the simulator inbox, verify it
//   node scripts/containers-smoke.mjs traffic     sends before, during and after $RESTART_CMD (restart Redis),
//                                                 then shows every accepted (202) OTP reached the inbox
// Ports and the API key come from the environment (API_PORT, WEBHOOKS_PORT, DASHBOARD_PORT, SIMULATOR_PORT, API_KEY).
import { exec } from 'node:child_process';
import { promisify } from 'node:util';

const env = process.env;
const base = (port) => `http://127.0.0.1:${port}`;
const api = base(env.API_PORT);
const sim = base(env.SIMULATOR_PORT);
const auth = { authorization: `Bearer ${env.API_KEY}`, 'content-type': 'application/json' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function fetchJson(url, init = {}) {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: await r.json().catch(() => null) };
}

async function waitFor(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const ok = await check();
      if (ok === true) return;
      last = String(ok);
    } catch (e) {
      last = e.message;
    }
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what} (${last})`);
}

const send = (phoneNumber) =>
  fetchJson(`${api}/v1/otp/send`, { method: 'POST', headers: auth, body: JSON.stringify({ phoneNumber }) });
const inbox = async (phone) => {
  const r = await fetchJson(`${sim}/_sim/inbox.json?phone=${encodeURIComponent(phone)}`);
  return Array.isArray(r.body) ? r.body : (r.body?.messages ?? []);
};

async function ready(timeoutMs = Number(env.READY_TIMEOUT_MS ?? 120_000)) {
  const started = Date.now();
  const targets = {
    api: `${api}/readyz`,
    webhooks: `${base(env.WEBHOOKS_PORT)}/readyz`,
    dashboard: `${base(env.DASHBOARD_PORT)}/readyz`,
    simulator: `${sim}/healthz`,
  };
  await Promise.all(
    Object.entries(targets).map(([name, url]) =>
      waitFor(
        `${name} ${url}`,
        async () => (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok || 'not ready',
        timeoutMs,
      ).then(() => console.log(`ok: ${name} ready (${url.replace(/^http:\/\/127\.0\.0\.1:/, 'port ')})`)),
    ),
  );
  console.log(`ok: every published service ready after ${((Date.now() - started) / 1000).toFixed(1)}s of polling`);
}

async function otp() {
  const phoneNumber = '+33612345678';
  const sent = await send(phoneNumber);
  if (sent.status !== 202) throw new Error(`send answered ${sent.status} ${JSON.stringify(sent.body)}`);
  let code = null;
  await waitFor(
    'the SMS in the simulator inbox',
    async () => {
      const m = (await inbox(phoneNumber)).at(-1);
      code = m ? (/\b(\d{6})\b/.exec(m.body)?.[1] ?? null) : null;
      return code !== null || 'no message yet';
    },
    30_000,
  );
  const verified = await fetchJson(`${api}/v1/otp/verify`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ id: sent.body.id, code }),
  });
  if (verified.status !== 200 || verified.body?.status !== 'approved')
    throw new Error(`verify answered ${verified.status} ${JSON.stringify(verified.body)}`);
  console.log(`ok: OTP ${sent.body.id} sent (202), its code read from the simulator inbox, verified (approved)`);
}

async function traffic() {
  // Sends go on before, during and for a while after the restart (the restart runs beside them, not blocking).
  const restartAtMs = Number(env.RESTART_AT_MS ?? 3000);
  const afterMs = Number(env.TRAFFIC_AFTER_MS ?? 4000);
  const accepted = new Map(); // phoneNumber -> id
  const refused = {};
  let n = 0;
  let restartEnd = null;
  let restartSeconds = null;
  const started = Date.now();
  const going = () => Date.now() - started < 90_000 && (restartEnd === null || Date.now() - restartEnd < afterMs);
  const loop = async (lane) => {
    while (going()) {
      const phoneNumber = `+3361${String(lane)}${String(n++).padStart(6, '0')}`;
      try {
        const r = await send(phoneNumber);
        if (r.status === 202) accepted.set(phoneNumber, r.body.id);
        else refused[r.status] = (refused[r.status] ?? 0) + 1;
      } catch (e) {
        refused[e.name] = (refused[e.name] ?? 0) + 1;
        await sleep(100);
      }
      await sleep(40);
    }
  };
  const restart = (async () => {
    await sleep(restartAtMs);
    const t = Date.now();
    const list = (await fetchJson(`${sim}/_sim/inbox.json`)).body ?? [];
    const inInbox = new Set(list.map((m) => m.to).filter((to) => accepted.has(to))).size;
    console.log(
      `... ${accepted.size} accepted so far, ${inInbox} of them in the inbox, so ${accepted.size - inInbox} waiting ` +
        `in Redis; restarting Redis: ${env.RESTART_CMD}`,
    );
    try {
      await promisify(exec)(env.RESTART_CMD);
    } finally {
      restartEnd = Date.now();
      restartSeconds = (restartEnd - t) / 1000;
    }
  })();
  await Promise.all([loop(1), loop(2), restart]);
  console.log(
    `ok: ${n} sends over ${((Date.now() - started) / 1000).toFixed(1)}s, Redis restarted after ${restartAtMs / 1000}s ` +
      `(the restart took ${restartSeconds}s): ${accepted.size} accepted (202), refused ${JSON.stringify(refused)}`,
  );
  if (accepted.size < 20) throw new Error(`only ${accepted.size} sends accepted: too few to show anything`);
  const missing = new Set(accepted.keys());
  await waitFor(
    `every accepted OTP in the inbox (${missing.size} left)`,
    async () => {
      const r = await fetchJson(`${sim}/_sim/inbox.json`);
      const list = Array.isArray(r.body) ? r.body : (r.body?.messages ?? []);
      for (const m of list) missing.delete(m.to);
      return missing.size === 0 || `${missing.size} missing`;
    },
    Number(env.DELIVERY_TIMEOUT_MS ?? 90_000),
  );
  // The API's own record agrees: each accepted OTP was sent by a provider.
  await waitFor('the API ready again', async () => (await fetchJson(`${api}/readyz`)).status === 200, 60_000);
  for (const [phoneNumber, id] of accepted) {
    let r;
    await waitFor(
      `OTP ${id} read back`,
      async () => {
        r = await fetchJson(`${api}/v1/otp/${id}`, { headers: auth });
        return r.status !== 503 || 'store unavailable';
      },
      30_000,
    );
    if (r.status !== 200 || !['sent', 'delivered'].includes(r.body?.deliveryStatus))
      throw new Error(`OTP ${id} (${phoneNumber}) is ${r.status} ${JSON.stringify(r.body)}`);
  }
  console.log(`ok: all ${accepted.size} accepted OTPs reached the inbox and read back as sent or delivered: none lost`);
}

const commands = { ready, otp, traffic };
const cmd = commands[process.argv[2]];
if (!cmd) {
  console.error(`usage: node scripts/containers-smoke.mjs ${Object.keys(commands).join('|')}`);
  process.exit(2);
}
cmd().catch((e) => {
  console.error(`containers-smoke ${process.argv[2]}: ${e.message}`);
  process.exit(1);
});
