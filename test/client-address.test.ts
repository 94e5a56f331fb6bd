import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frMobile, startTestApi, type TestApi } from './support/otp-harness.js';

/**
 * The client address behind reverse proxies (TRUST_PROXY): the per-IP limit counts the address the trusted
 * proxies saw, never an X-Forwarded-For entry the caller wrote.
 */
let oneHop: TestApi;
let byCidr: TestApi;

beforeAll(async () => {
  const common = { OTP_RESEND_COOLDOWN_SECONDS: '0', RATE_LIMIT_PER_IP_PER_MINUTE: '3' };
  [oneHop, byCidr] = await Promise.all([
    startTestApi({ ...common, TRUST_PROXY: '1' }),
    startTestApi({ ...common, TRUST_PROXY: '10.0.0.0/8' }),
  ]);
});
afterAll(async () => {
  await Promise.all([oneHop?.close(), byCidr?.close()]);
});

const PROXY = '10.0.0.5';
const spoofed = (i: number) => ({ 'x-forwarded-for': `203.0.113.${i}, 198.51.100.7` });

describe('client addresses behind proxies', () => {
  it('regression: a spoofed leftmost X-Forwarded-For entry does not change the IP counted (TRUST_PROXY=1)', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await oneHop.send(frMobile(100 + i), { ip: PROXY, headers: spoofed(i) })).status).toBe(202);
    }
    // TRUST_PROXY=true took 203.0.113.<i>, a new address each time: the limit never applied
    const refused = await oneHop.send(frMobile(110), { ip: PROXY, headers: spoofed(9) });
    expect(refused.status).toBe(429);
    expect(refused.body['error']).toMatchObject({ code: 'rate_limited' });
    // another client behind the same proxy is counted apart
    const other = { 'x-forwarded-for': '203.0.113.1, 198.51.100.8' };
    const o = await oneHop.send(frMobile(111), { ip: PROXY, headers: other });
    expect(o.status, o.text).toBe(202);
  });

  it('with proxy CIDRs, walks back through trusted proxies only', async () => {
    const via = (client: string, spoof: number) => ({
      ip: PROXY,
      headers: { 'x-forwarded-for': `203.0.113.${spoof}, ${client}, 10.1.2.3` },
    });
    for (let i = 0; i < 3; i++) expect((await byCidr.send(frMobile(200 + i), via('198.51.100.9', i))).status).toBe(202);
    expect((await byCidr.send(frMobile(210), via('198.51.100.9', 7))).status).toBe(429);
    // a caller connecting directly (not from a trusted proxy) is its own address, whatever it forwards
    for (let i = 0; i < 3; i++) {
      const direct = { ip: '192.0.2.44', headers: { 'x-forwarded-for': `203.0.113.${50 + i}` } };
      expect((await byCidr.send(frMobile(220 + i), direct)).status).toBe(202);
    }
    expect((await byCidr.send(frMobile(230), { ip: '192.0.2.44', headers: spoofed(60) })).status).toBe(429);
  });
});
