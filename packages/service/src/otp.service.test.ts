import { deriveKeys, loadConfig } from '@otp-gateway/core';
import type { OtpRepo, SendQueues } from '@otp-gateway/store';
import { setStoreErrorSink } from '@otp-gateway/store';
import { afterEach, describe, expect, it } from 'vitest';
import { createOtpService } from './otp.service.js';

// Unit test of the service's order of steps, with fakes for the store (the store's own tests use a real Redis).
const config = loadConfig(
  { OTP_SECRET: 'otp-service-unit-test-secret-0123456789', API_KEYS: 'shop:shop-secret-0123456789' },
  'api',
);
const caller = { keyName: 'shop', ip: '192.0.2.1' };
const OTP_ID = `otp_${'a'.repeat(32)}`;

afterEach(() => setStoreErrorSink(() => {}));

describe('send: an Idempotency-Key replay whose read fails', () => {
  it('regression: takes the guards count back before answering 503 (it was left counted)', async () => {
    let undone = 0;
    const service = createOtpService({
      config,
      keys: deriveKeys('otp-service-unit-test-secret-0123456789'),
      limiter: { hit: async () => null },
      idempotency: { claim: async () => ({ kind: 'replay', otpId: OTP_ID }) },
      guards: {
        send: async () => ({
          kind: 'ok',
          undo: async () => {
            undone++;
          },
        }),
        approved: async () => {},
        blocks: async () => [],
        lift: async () => false,
      },
      repo: { read: () => Promise.reject(new Error('connection lost')) } as unknown as OtpRepo,
      queues: {} as SendQueues,
    });
    const answer = await service
      .send(caller, { phoneNumber: '+33612345678', idempotencyKey: 'signup-1' })
      .catch((e: unknown) => e);
    expect(answer).toMatchObject({ statusCode: 503, code: 'store_unavailable' });
    expect(undone).toBe(1);
  });
});
