import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postWebhook } from './webhook.sender.js';

const SECRET_A = `whsec_${Buffer.from('a'.repeat(32)).toString('base64')}`;
const SECRET_B = `whsec_${Buffer.from('b'.repeat(32)).toString('base64')}`;

let server: Server;
let port: number;
let answer = 200;
let closedTrickles = 0;
const seen: { headers: IncomingHttpHeaders; body: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ headers: req.headers, body });
      if (answer === 0) return; // never answers
      if (answer === 1) {
        // headers at once, then a body that trickles for good
        res.writeHead(200);
        res.write('o');
        const trickle = setInterval(() => res.write('k'), 50);
        res.on('close', () => {
          clearInterval(trickle);
          closedTrickles++;
        });
        return;
      }
      res.statusCode = answer;
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const body = JSON.stringify({ type: 'otp.sent', timestamp: new Date().toISOString(), data: { id: 'otp_1' } });
const open = { timeoutMs: 2000, allowPrivateNetworks: true };

describe('postWebhook', () => {
  it('signs with every secret: the standardwebhooks library verifies each one (rotation)', async () => {
    answer = 204;
    const r = await postWebhook(
      { url: `http://127.0.0.1:${port}/hook`, secrets: [SECRET_A, SECRET_B] },
      { id: 'evt_1', body },
      open,
    );
    expect(r).toEqual({ kind: 'delivered', status: 204 });
    const got = seen.at(-1)!;
    expect(got.body).toBe(body);
    expect(got.headers['webhook-id']).toBe('evt_1');
    expect(String(got.headers['webhook-signature']).split(' ')).toHaveLength(2);
    const headers = got.headers as Record<string, string>;
    for (const secret of [SECRET_A, SECRET_B]) expect(new Webhook(secret).verify(got.body, headers)).toBeTruthy();
    const other = `whsec_${Buffer.from('c'.repeat(32)).toString('base64')}`;
    expect(() => new Webhook(other).verify(got.body, headers)).toThrow();
  });

  it('410 is gone, 500 a failure to retry, no answer in time a failure', async () => {
    const target = { url: `http://127.0.0.1:${port}/hook`, secrets: [SECRET_A] };
    answer = 410;
    expect(await postWebhook(target, { id: 'evt_2', body }, open)).toEqual({ kind: 'gone' });
    answer = 500;
    expect(await postWebhook(target, { id: 'evt_2', body }, open)).toMatchObject({ kind: 'failed', status: 500 });
    answer = 0;
    expect(await postWebhook(target, { id: 'evt_2', body }, { ...open, timeoutMs: 200 })).toMatchObject({
      kind: 'failed',
      status: null,
    });
  });

  it('regression: an endpoint that answers 200 then trickles its body is delivered, and its connection closed at once', async () => {
    answer = 1;
    const before = closedTrickles;
    const r = await postWebhook(
      { url: `http://127.0.0.1:${port}/hook`, secrets: [SECRET_A] },
      { id: 'e3', body },
      open,
    );
    expect(r).toEqual({ kind: 'delivered', status: 200 });
    // the socket was held until the endpoint stopped sending (never, here): now it is closed by us
    for (let i = 0; i < 50 && closedTrickles === before; i++) await new Promise((ok) => setTimeout(ok, 20));
    expect(closedTrickles).toBe(before + 1);
  });

  it('refuses a loopback or private address unless allowed, checked on what the name resolves to', async () => {
    const before = seen.length;
    const closed = { timeoutMs: 2000, allowPrivateNetworks: false };
    answer = 200;
    expect(
      await postWebhook({ url: `http://127.0.0.1:${port}/`, secrets: [SECRET_A] }, { id: 'e', body }, closed),
    ).toMatchObject({ kind: 'refused' });
    // a public-looking name that resolves (now) to loopback: DNS rebinding
    const resolve = ((_h: string, _o: unknown, cb: (e: null, a: { address: string; family: number }[]) => void) =>
      cb(null, [{ address: '127.0.0.1', family: 4 }])) as never;
    expect(
      await postWebhook(
        { url: `http://hooks.example.com:${port}/`, secrets: [SECRET_A] },
        { id: 'e', body },
        { ...closed, resolve },
      ),
    ).toMatchObject({ kind: 'refused' });
    const metadata = ((_h: string, _o: unknown, cb: (e: null, a: { address: string; family: number }[]) => void) =>
      cb(null, [
        { address: '93.184.215.14', family: 4 },
        { address: '169.254.169.254', family: 4 },
      ])) as never;
    expect(
      await postWebhook(
        { url: `http://hooks.example.com:${port}/`, secrets: [SECRET_A] },
        { id: 'e', body },
        { ...closed, resolve: metadata },
      ),
    ).toMatchObject({ kind: 'refused' });
    expect(seen.length).toBe(before);
  });
});
