import { readFileSync } from 'node:fs';
import twilio from 'twilio';
import { describe, expect, it } from 'vitest';
import { sendSignals } from '../http.errors.js';
import { classifyTwilioFailure, classifyTwilioResponse } from './twilio.errors.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8'));

describe('classifyTwilioResponse, from recorded Twilio error bodies', () => {
  it.each([
    ['error-20003', 'misconfigured'],
    ['error-20404', 'misconfigured'],
    ['error-21212', 'misconfigured'],
    ['error-21606', 'misconfigured'],
    ['error-21408', 'misconfigured'],
    ['error-21612', 'misconfigured'],
    ['error-21620', 'misconfigured'],
    ['error-21211', 'permanent'],
    ['error-21614', 'permanent'],
    ['error-21610', 'permanent'],
    ['error-21611', 'retryable'],
    ['error-20500', 'retryable'],
    ['error-20503', 'retryable'],
    ['error-20429', 'rate_limited'],
  ])('%s is %s, coded with the Twilio code', (name, kind) => {
    const body = fixture(name);
    const e = classifyTwilioResponse(body.status, body);
    expect(e).toMatchObject({ name: 'ProviderError', kind, code: String(body.code) });
  });

  it('never copies the phone number from Twilio’s message', () => {
    const e = classifyTwilioResponse(400, fixture('error-21211'));
    expect(e.message).not.toContain('+336');
    expect(e.message).toContain('invalid To number');
  });

  it('reads Retry-After in seconds or as a date; without one, names no wait (the circuit backs off)', () => {
    const body = fixture('error-20429');
    expect(classifyTwilioResponse(429, body, '7').retryAfterMs).toBe(7000);
    const inTwoSeconds = new Date(Date.now() + 2000).toUTCString();
    expect(classifyTwilioResponse(429, body, inTwoSeconds).retryAfterMs).toBeGreaterThan(500);
    expect(classifyTwilioResponse(429, body).retryAfterMs).toBeUndefined();
    expect(classifyTwilioResponse(429, null, '2')).toMatchObject({
      kind: 'rate_limited',
      code: '429',
      retryAfterMs: 2000,
    });
  });

  it('treats a bare 5xx as retryable and a bare 4xx as misconfigured', () => {
    expect(classifyTwilioResponse(502, null)).toMatchObject({ kind: 'retryable', code: '502' });
    expect(classifyTwilioResponse(403, null)).toMatchObject({ kind: 'misconfigured', code: '403' });
  });
});

describe('classifyTwilioFailure', () => {
  const signals = () => sendSignals(new AbortController().signal, 5000);

  it('reads the library’s RestException, with Retry-After from the last response', () => {
    const err = new twilio.RestException({ statusCode: 429, body: JSON.stringify(fixture('error-20429')) });
    const e = classifyTwilioFailure(err, signals(), { statusCode: 429, headers: { 'retry-after': '4' } });
    expect(e).toMatchObject({ kind: 'rate_limited', code: '20429', retryAfterMs: 4000 });
  });

  it('makes an unreadable answer and a network failure retryable', () => {
    expect(classifyTwilioFailure(new SyntaxError('Unexpected token'), signals())).toMatchObject({
      kind: 'retryable',
      code: 'BAD_RESPONSE',
    });
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(classifyTwilioFailure(refused, signals())).toMatchObject({ kind: 'retryable', code: 'ECONNREFUSED' });
  });

  it('tells the caller’s abort from a timeout', () => {
    const caller = new AbortController();
    caller.abort();
    expect(classifyTwilioFailure(new Error('canceled'), sendSignals(caller.signal, 5000)).code).toBe('ABORTED');
    const timedOut = Object.assign(new Error('timeout of 300ms exceeded'), { code: 'ECONNABORTED' });
    expect(classifyTwilioFailure(timedOut, signals())).toMatchObject({ kind: 'retryable', code: 'TIMEOUT' });
  });
});
