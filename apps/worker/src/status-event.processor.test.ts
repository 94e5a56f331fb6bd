import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createStatusEventMetrics } from './status-event.metrics.js';
import { createStatusEventProcessor, webhookBackoff } from './status-event.processor.js';

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

  it('backs off exponentially with jitter, at most an hour', () => {
    const at = (r: number) => webhookBackoff(1000, () => r);
    expect([1, 2, 3, 4].map(at(1))).toEqual([1000, 2000, 4000, 8000]);
    expect([1, 2, 3, 4].map(at(0))).toEqual([500, 1000, 2000, 4000]);
    expect(at(1)(30)).toBe(3_600_000);
  });
});
