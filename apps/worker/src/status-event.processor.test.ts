import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createStatusEventMetrics } from './status-event.metrics.js';
import {
  createStatusEventProcessor,
  ENDPOINT_FAILURES_TO_HOLD,
  ENDPOINT_HOLD_MS,
  webhookBackoff,
} from './status-event.processor.js';

const log = { info() {}, warn() {}, error() {}, debug() {} } as never;
const job = (over: Record<string, unknown> = {}) =>
  ({
    name: 'otp.sent',
    attemptsMade: 0,
    timestamp: Date.now(),
    data: { webhookId: 'evt_1', keyName: 'k', body: '{}' },
    ...over,
  }) as never;

describe('status event processor', () => {
  const setup = (outcome: unknown, target: unknown = { url: 'https://x.example/h', secrets: [] }) => {
    const registry = new Registry();
    const metrics = createStatusEventMetrics(registry, async () => null);
    const posted: unknown[] = [];
    const process = createStatusEventProcessor({
      targetFor: () => target as never,
      post: async (...a: unknown[]) => {
        posted.push(a);
        return outcome as never;
      },
      settings: { timeoutMs: 1000, allowPrivateNetworks: false, maxAgeMs: 60_000 },
      metrics,
      log,
    });
    const count = async (o: string) =>
      (await registry.getSingleMetric('otp_webhook_deliveries_total')!.get()).values.find((v) => v.labels.outcome === o)
        ?.value ?? 0;
    return { process, posted, count, registry };
  };

  it('a 2xx completes; a 410 fails for good; a 500 throws to be retried; no endpoint drops', async () => {
    const ok = setup({ kind: 'delivered', status: 200 });
    await ok.process(job());
    expect(await ok.count('delivered')).toBe(1);
    const gone = setup({ kind: 'gone' });
    await expect(gone.process(job())).rejects.toMatchObject({ name: 'UnrecoverableError' });
    const failed = setup({ kind: 'failed', status: 500, reason: 'answered 500' });
    await expect(failed.process(job({ attemptsMade: 2 }))).rejects.not.toMatchObject({ name: 'UnrecoverableError' });
    const retries = (await failed.registry.getSingleMetric('otp_webhook_retries_total')!.get()).values[0]?.value;
    expect(retries).toBe(1);
    const none = setup({ kind: 'delivered', status: 200 }, null);
    await none.process(job());
    expect(none.posted).toEqual([]);
    expect(await none.count('no_endpoint')).toBe(1);
  });

  it('an event older than its maximum age is given up without a try', async () => {
    const old = setup({ kind: 'delivered', status: 200 });
    await expect(old.process(job({ timestamp: Date.now() - 61_000 }))).rejects.toMatchObject({
      name: 'UnrecoverableError',
    });
    expect(old.posted).toEqual([]);
  });

  it('regression: an unreachable endpoint is held after 5 tries without an answer (its events fail at once, freeing the slots); then one try probes it', async () => {
    const registry = new Registry();
    const metrics = createStatusEventMetrics(registry, async () => null);
    let t = 1_000_000;
    let answer: () => Promise<unknown> = async () => ({ kind: 'failed', status: null, reason: 'no answer in 1000 ms' });
    const posted: string[] = [];
    const process = createStatusEventProcessor({
      targetFor: (k) => ({ url: `https://${k}.example/h`, secrets: [] }) as never,
      post: async (target) => {
        posted.push(target.url);
        return (await answer()) as never;
      },
      settings: { timeoutMs: 1000, allowPrivateNetworks: false, maxAgeMs: 3_600_000 },
      metrics,
      log,
      now: () => t,
    });
    const dead = (n: number) => job({ timestamp: t, data: { webhookId: `evt_${n}`, keyName: 'dead', body: '{}' } });
    const deadTries = () => posted.filter((u) => u === 'https://dead.example/h').length;
    for (let i = 0; i < ENDPOINT_FAILURES_TO_HOLD; i++) await expect(process(dead(i))).rejects.toThrow(/no answer/);
    // held: no try, an error at once (BullMQ retries it later); another key's endpoint is tried as usual
    await expect(process(dead(10))).rejects.toThrow(/held/);
    expect(deadTries()).toBe(ENDPOINT_FAILURES_TO_HOLD);
    answer = async () => ({ kind: 'failed', status: 500, reason: 'answered 500' });
    await expect(
      process(job({ timestamp: t, data: { webhookId: 'evt_ok', keyName: 'alive', body: '{}' } })),
    ).rejects.toThrow(/500/);
    expect(posted.at(-1)).toBe('https://alive.example/h');
    // after the hold, one try probes while the others stay held; the endpoint answers: its events flow again
    t += ENDPOINT_HOLD_MS + 1;
    let answerProbe: (v: unknown) => void = () => {};
    answer = () => new Promise((r) => (answerProbe = r));
    const probe = process(dead(11));
    await expect(process(dead(12))).rejects.toThrow(/held/);
    answerProbe({ kind: 'delivered', status: 200 });
    await probe;
    answer = async () => ({ kind: 'delivered', status: 200 });
    await process(dead(13));
    await process(dead(14));
    expect(deadTries()).toBe(ENDPOINT_FAILURES_TO_HOLD + 3);
    const held = (await registry.getSingleMetric('otp_webhook_deliveries_total')!.get()).values.find(
      (v) => v.labels.outcome === 'held',
    );
    expect(held?.value).toBe(2);
  });

  it('backs off exponentially with jitter, at most an hour', () => {
    const at = (r: number) => webhookBackoff(1000, () => r);
    expect([1, 2, 3, 4].map(at(1))).toEqual([1000, 2000, 4000, 8000]);
    expect([1, 2, 3, 4].map(at(0))).toEqual([500, 1000, 2000, 4000]);
    expect(at(1)(30)).toBe(3_600_000);
  });
});
