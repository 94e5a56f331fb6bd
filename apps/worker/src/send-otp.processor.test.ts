import { deriveKeys, encryptCode, ProviderError, type SmsProvider } from '@otp-gateway/core';
import type { DeliveryRepo } from '@otp-gateway/store';
import { describe, expect, it } from 'vitest';
import { createWorkerMetrics } from './metrics.js';
import { createSendProcessor } from './send-otp.processor.js';

// The processor alone, with a fake store and provider: what it records when the store fails around a send.
const keys = deriveKeys('unit-test-secret-0123456789abcdefghijklmnop');
const OTP_ID = 'otp_0123456789abcdef0123456789abcdef';
const silent = { info() {}, warn() {}, error() {}, debug() {}, child: () => silent };

function setup(accepted: () => Promise<string[]>, refusal?: ProviderError) {
  const calls: string[] = [];
  const provider: SmsProvider = {
    id: 'twilio',
    async send() {
      calls.push('provider.send');
      if (refusal) throw refusal;
      return { messageId: 'SM1', providerStatus: 'queued' };
    },
  };
  const delivery = {
    begin: async () => ({
      kind: 'go' as const,
      attempt: 1,
      provider: 'twilio' as const,
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
    }),
    accepted: async () => {
      calls.push('accepted');
      return accepted();
    },
    failed: async () => {
      calls.push('failed');
      return { circuit: 'closed' as const, ended: false };
    },
    giveUp: async () => {
      calls.push('giveUp');
      return { ended: true, callingCode: '33' };
    },
    costKnown: async () => true,
  } satisfies DeliveryRepo;
  const process = createSendProcessor({
    providers: new Map([['twilio', provider]]),
    order: ['twilio'],
    delivery,
    keys,
    log: silent,
    metrics: createWorkerMetrics(),
    shutdown: new AbortController().signal,
  });
  const job = { name: 'send', id: OTP_ID, data: { otpId: OTP_ID }, opts: {}, attemptsMade: 0 } as never;
  return { run: () => process(job, 'token'), calls };
}

describe('send processor: the store fails after the provider accepted', () => {
  it('regression: a store error while recording the acceptance is tried again, never recorded as a provider failure', async () => {
    let refusals = 2;
    const { run, calls } = setup(async () => {
      if (refusals-- > 0) throw new Error('READONLY You can not write against a read only replica.');
      return [];
    });
    await run();
    expect(calls).toEqual(['provider.send', 'accepted', 'accepted', 'accepted']);
  });

  it('a store that stays away ends the run with its error: no failed attempt, no second send', async () => {
    const { run, calls } = setup(async () => {
      throw new Error('CLUSTERDOWN The cluster is down');
    });
    await expect(run()).rejects.toThrow('CLUSTERDOWN');
    expect(calls.filter((c) => c !== 'accepted')).toEqual(['provider.send']);
    expect(calls.filter((c) => c === 'accepted')).toHaveLength(4);
  }, 10_000);

  it('a provider refusal is still recorded as a failed attempt', async () => {
    const { run, calls } = setup(async () => [], new ProviderError('twilio refused', 'permanent', '21610'));
    await expect(run()).rejects.toThrow('twilio refused the number (21610)');
    expect(calls).toEqual(['provider.send', 'failed']);
  });
});
