import type { GuardBlock, SendGuards } from '@otp-gateway/store';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GUARDS_PATH, guardsPage } from './guards.page.js';

// The page alone, over a fake guards store (a unit test): who may lift a block.
const BLOCK: GuardBlock = {
  id: 'prefix_velocity|shop|+33612345',
  guard: 'prefix_velocity',
  subject: 'shop|+33612345',
  label: '+33612345xxx',
  country: 'FR',
  callingCode: '33',
  why: '20 codes sent without a verification after them (limit 20)',
  until: Date.now() + 3_600_000,
};

let app: FastifyInstance;
let lifted: string[];
beforeEach(async () => {
  lifted = [];
  const guards = {
    blocks: async () => [BLOCK],
    lift: async (id: string) => {
      lifted.push(id);
      return true;
    },
  } as unknown as SendGuards;
  app = Fastify();
  await app.register(async (s: FastifyInstance) => guardsPage(s, { guards }));
  await app.ready();
});
afterEach(() => app.close());

const token = async () => {
  const html = (await app.inject({ url: GUARDS_PATH })).body;
  return /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
};
const lift = (csrf: string, headers: Record<string, string>) =>
  app.inject({
    method: 'POST',
    url: `${GUARDS_PATH}/lift`,
    headers: { 'content-type': 'application/x-www-form-urlencoded', host: 'dash.example', ...headers },
    payload: new URLSearchParams({ id: BLOCK.id, csrf }).toString(),
  });

describe('lifting a guard block', () => {
  it('takes the page token from the same site, and from a browser that says Origin: null (no-referrer) without Sec-Fetch-Site', async () => {
    const csrf = await token();
    expect(csrf).not.toBe('');
    expect((await lift(csrf, { 'sec-fetch-site': 'same-origin' })).statusCode).toBe(303);
    expect((await lift(csrf, { origin: 'null' })).statusCode).toBe(303);
    expect((await lift(csrf, { origin: 'http://dash.example' })).statusCode).toBe(303);
    expect(lifted).toEqual([BLOCK.id, BLOCK.id, BLOCK.id]);
  });

  it('refuses another site, or no token, whatever else the request says', async () => {
    const csrf = await token();
    for (const [c, headers] of [
      [csrf, { 'sec-fetch-site': 'cross-site' }],
      [csrf, { origin: 'http://evil.example' }],
      ['guess', { 'sec-fetch-site': 'same-origin' }],
      ['guess', { origin: 'null' }],
    ] as const) {
      expect((await lift(c, headers)).statusCode).toBe(403);
    }
    expect(lifted).toEqual([]);
  });
});
