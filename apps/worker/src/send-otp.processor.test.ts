import {
  deriveKeys,
  encryptCode,
  type OutboundSms,
  ProviderError,
  type SendResult,
  type SmsProvider,
} from '@otp-gateway/core';
import {
  type BeginOutcome,
  type DeliveryRepo,
  MIN_RESEND_LIFE_MS,
  MIN_SEND_LIFE_MS,
  type StepRetry,
} from '@otp-gateway/store';
import { describe, expect, it } from 'vitest';
import { createWorkerMetrics } from './metrics.js';
import { createSendProcessor } from './send-otp.processor.js';

// The processor alone, with a fake store and provider: what it asks of the store around a send.
const keys = deriveKeys('unit-test-secret-0123456789abcdefghijklmnop');
const OTP_ID = 'otp_0123456789abcdef0123456789abcdef';
const silent = { info() {}, warn() {}, error() {}, debug() {}, child: () => silent };

const go: BeginOutcome = {
  kind: 'go',
  attempt: 1,
  provider: 'twilio',
  requestAttempt: 1,
  hadFailures: false,
  otp: {
    phoneNumber: '+33612345678',
    locale: 'en',
    sealedCode: encryptCode(keys, OTP_ID, '123456'),
    expiresAt: Date.now() + 600_000,
    callingCode: '33',
    country: 'FR',
    keyName: 'shop',
    testOutcome: null,
  },
};

/**
 * `step`: what one try of recording the acceptance does (the fake store's). `seen` collects what the provider was
 * asked to send, what the store was told on acceptance, and the early reports applied; `begun` replaces `go`.
 */
function setup(
  step: () => Promise<string[]>,
  refusal?: ProviderError,
  storeOnFailure?: Error,
  more: { begun?: BeginOutcome; answer?: SendResult } = {},
) {
  const calls: string[] = [];
  const warnings: string[] = [];
  const minLives: number[] = [];
  const seen = { sms: [] as OutboundSms[], accepted: [] as unknown[], applied: [] as unknown[] };
  const log = { ...silent, warn: (_: object, msg: string) => warnings.push(msg), child: () => log };
  const metrics = createWorkerMetrics();
  const provider: SmsProvider = {
    id: 'twilio',
    async send(sms) {
      calls.push('provider.send');
      seen.sms.push(sms);
      if (refusal) throw refusal;
      return more.answer ?? { messageId: 'SM1', providerStatus: 'queued' };
    },
  };
  const delivery: DeliveryRepo = {
    async begin(...args) {
      calls.push(`begin after=${args[4]}`);
      minLives.push(args[2]);
      return more.begun ?? go;
    },
    async accepted(otpId, attempt, _provider, result, retry?: StepRetry) {
      seen.accepted.push({ otpId, attempt, result });
      return (retry ?? ((s) => s()))(() => {
        calls.push('record');
        return step();
      });
    },
    async failed() {
      calls.push('failed');
      if (storeOnFailure) throw storeOnFailure;
      return { circuit: 'closed', ended: false };
    },
    async giveUp() {
      calls.push('giveUp');
      return { ended: true, callingCode: '33' };
    },
    costKnown: async () => true,
  };
  const process = createSendProcessor({
    providers: new Map([['twilio', provider]]),
    order: ['twilio'],
    delivery,
    keys,
    log,
    metrics,
    shutdown: new AbortController().signal,
    applyEarlyReports: async (reports, ref) => {
      seen.applied.push({ reports, ref });
    },
  });
  const run = (data: { otpId: string; after?: number } = { otpId: OTP_ID }) =>
    process({ name: data.after ? 'resend' : 'send', id: OTP_ID, data, opts: {}, attemptsMade: 0 } as never, 'token');
  return { run, calls, metrics, warnings, minLives, seen };
}

describe('send processor: the store fails after the provider accepted', () => {
  it('regression: a store error while recording the acceptance is tried again, never recorded as a provider failure', async () => {
    let refusals = 2;
    const { run, calls } = setup(async () => {
      if (refusals-- > 0) throw new Error('READONLY You can not write against a read only replica.');
      return [];
    });
    await run();
    expect(calls).toEqual(['begin after=undefined', 'provider.send', 'record', 'record', 'record']);
  });

  it('a store that stays away ends the run with its error: no failed attempt, no second send', async () => {
    const { run, calls } = setup(async () => {
      throw new Error('CLUSTERDOWN The cluster is down');
    });
    await expect(run()).rejects.toThrow('CLUSTERDOWN');
    expect(calls).toEqual(['begin after=undefined', 'provider.send', 'record', 'record', 'record', 'record']);
  }, 10_000);

  it('a provider refusal is still recorded as a failed attempt', async () => {
    const { run, calls } = setup(async () => [], new ProviderError('twilio refused', 'permanent', '21610'));
    await expect(run()).rejects.toThrow('twilio refused the number (21610)');
    expect(calls).toEqual(['begin after=undefined', 'provider.send', 'failed']);
  });

  it('regression: a provider failure is counted and logged even when the store cannot record it', async () => {
    const { run, calls, metrics, warnings } = setup(
      async () => [],
      new ProviderError('twilio server error', 'retryable', '503'),
      new Error('READONLY You can not write against a read only replica.'),
    );
    await expect(run()).rejects.toThrow('READONLY');
    expect(calls).toEqual(['begin after=undefined', 'provider.send', 'failed']);
    const counted = await metrics.attemptFailures.get();
    expect(counted.values).toContainEqual(
      expect.objectContaining({ labels: { provider: 'twilio', kind: 'retryable' }, value: 1 }),
    );
    expect(warnings).toContain('sms attempt failed');
  });

  it('a resend job tells the store which job it is (the sweep re-queues that one should it die)', async () => {
    const { run, calls } = setup(async () => []);
    await run({ otpId: OTP_ID, after: 2 });
    expect(calls[0]).toBe('begin after=2');
  });

  it('regression: a resend job asks for the resend life left (15 s), a first send for 5 s', async () => {
    const { run, minLives } = setup(async () => []);
    await run({ otpId: OTP_ID, after: 1 });
    await run();
    expect(minLives).toEqual([MIN_RESEND_LIFE_MS, MIN_SEND_LIFE_MS]);
  });
});

describe('send processor: where the delivery reports of a message land', () => {
  it('tells the provider the attempt the message counts as, the store whether its reports name it, and applies early reports to it', async () => {
    // attempt 3 resumes the request of attempt 2 (an interrupted attempt): its request id is attempt 2's
    const begun = { ...go, attempt: 3, requestAttempt: 2 } as BeginOutcome;
    const answer = { messageId: 'SM9', providerStatus: 'queued', reportsNameAttempt: true };
    const { run, seen } = setup(async () => ['{"early":1}'], undefined, undefined, { begun, answer });
    await run();
    expect(seen.sms).toEqual([expect.objectContaining({ otpId: OTP_ID, attemptId: `${OTP_ID}-2`, attempt: 3 })]);
    expect(seen.accepted).toEqual([
      { otpId: OTP_ID, attempt: 3, result: expect.objectContaining({ messageId: 'SM9', reportsNameAttempt: true }) },
    ]);
    expect(seen.applied).toEqual([{ reports: ['{"early":1}'], ref: { otpId: OTP_ID, attempt: 3 } }]);
  });
});
