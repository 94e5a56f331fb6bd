import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { sendSignals, transportError } from './http.errors.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('sendSignals', () => {
  it('aborts the call at its deadline, and says it timed out', async () => {
    const caller = new AbortController();
    const s = sendSignals(caller.signal, 20);
    expect(s.combined.aborted).toBe(false);
    await sleep(60);
    expect(s.combined.aborted).toBe(true);
    expect(s.timedOut).toBe(true);
    expect(transportError('twilio', new Error('aborted'), s)).toMatchObject({ kind: 'retryable', code: 'TIMEOUT' });
    s.done();
  });

  it("aborts every call in flight when the caller's signal aborts, and says so; a call done before is left alone", () => {
    const caller = new AbortController();
    const finished = sendSignals(caller.signal, 5000);
    finished.done();
    const inFlight = Array.from({ length: 3 }, () => sendSignals(caller.signal, 5000));
    caller.abort();
    for (const s of inFlight) {
      expect(s.combined.aborted).toBe(true);
      expect(s.timedOut).toBe(false);
      expect(transportError('octopush', new Error('canceled'), s).code).toBe('ABORTED');
      s.done();
    }
    expect(finished.combined.aborted).toBe(false);
    // a send begun after the caller gave up is aborted at once
    const late = sendSignals(caller.signal, 5000);
    expect(late.combined.aborted).toBe(true);
    late.done();
  });

  it('clears the deadline when the call is done', async () => {
    const s = sendSignals(new AbortController().signal, 20);
    s.done();
    await sleep(60);
    expect(s.combined.aborted).toBe(false);
    expect(s.timedOut).toBe(false);
  });

  it("puts one listener on the caller's signal, however many calls are in flight", () => {
    const caller = new AbortController();
    const sends = Array.from({ length: 200 }, () => sendSignals(caller.signal, 5000));
    expect(getEventListeners(caller.signal, 'abort')).toHaveLength(1);
    for (const s of sends) s.done();
  });
});
