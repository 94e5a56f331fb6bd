import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeRedisClients, isolatedRedis } from '../../../test/support/redis.js';
import { type CallbackRepo, createCallbackRepo, type DeliveryReport, parseDeliveryReport } from './callbacks.repo.js';

let redis: Redis;
let repo: CallbackRepo;
const NOW = 1_700_000_000_000;

beforeAll(async () => {
  ({ redis } = await isolatedRedis());
  repo = createCallbackRepo(redis);
});
afterAll(async () => closeRedisClients(redis));
beforeEach(async () => {
  await redis.flushdb();
});

/** Lays an OTP out the way the API's SEND and the worker's BEGIN + ACCEPT scripts do: attempt 1 accepted. */
async function acceptedOtp(
  id: string,
  o: { status?: string; exp?: number; provider?: 'twilio' | 'octopush'; messageId?: string } = {},
) {
  const provider = o.provider ?? 'twilio';
  const messageId = o.messageId ?? `SM-${id}`;
  await redis.hset(`otp:o:${id}`, {
    id,
    key: 'k',
    phone: '+33612345678',
    hash: 'h',
    status: o.status ?? 'pending',
    ds: 'sent',
    provider,
    exp: o.exp ?? NOW + 300_000,
    created: NOW - 1000,
    left: 5,
    max: 5,
    cc: '33',
    locale: 'fr',
    na: 1,
    sealed: 'sealed-blob',
    acc: 1,
    'a1.p': provider,
    'a1.o': 'accepted',
    'a1.m': messageId,
    'a1.s': 'queued',
    'a1.t': NOW - 900,
    'a1.u': NOW - 800,
  });
  await redis.set(`otp:m:${provider}:${messageId}`, `${id}:1`);
  return messageId;
}

const report = (messageId: string, status: DeliveryReport['status'], extra: Partial<DeliveryReport> = {}) =>
  ({
    provider: 'twilio',
    messageId,
    status,
    providerStatus: status,
    errorCode: null,
    at: NOW,
    ...extra,
  }) satisfies DeliveryReport;

const otp = (id: string) => redis.hgetall(`otp:o:${id}`);

describe('callback repo', () => {
  it('moves forward only: a late sent after delivered leaves it delivered, a duplicate changes nothing', async () => {
    const m = await acceptedOtp('otp_a');
    const first = await repo.apply(report(m, 'delivered'), NOW);
    expect(first).toMatchObject({ kind: 'applied', otpId: 'otp_a', attempt: 1, deliveryStatus: 'delivered' });
    expect(first).toMatchObject({ changed: true, resend: null });
    const after = await otp('otp_a');
    expect(after).toMatchObject({ ds: 'delivered', 'a1.o': 'delivered', 'a1.s': 'delivered', 'a1.u': String(NOW) });

    const late = await repo.apply(report(m, 'sent'), NOW + 1);
    expect(late).toMatchObject({ kind: 'applied', deliveryStatus: 'delivered', changed: false });
    const dup = await repo.apply(report(m, 'delivered'), NOW + 2);
    expect(dup).toMatchObject({ kind: 'applied', deliveryStatus: 'delivered', changed: false });
    const contrary = await repo.apply(report(m, 'undelivered', { errorCode: '30003' }), NOW + 3);
    expect(contrary).toMatchObject({ changed: false, resend: null });
    expect(await otp('otp_a')).toEqual(after);
    expect(await redis.hget('otp:cir:twilio', 'fails')).toBeNull();
  });

  it('records a non-final status on the attempt without moving the OTP backwards', async () => {
    const m = await acceptedOtp('otp_b');
    const res = await repo.apply(report(m, 'sending'), NOW);
    expect(res).toMatchObject({ kind: 'applied', deliveryStatus: 'sent', changed: true });
    expect(await otp('otp_b')).toMatchObject({ ds: 'sent', 'a1.o': 'accepted', 'a1.s': 'sending' });
  });

  it('defers a report for an unknown message id and applies it to nothing', async () => {
    const m = await acceptedOtp('otp_c');
    const before = await otp('otp_c');
    const res = await repo.apply(report('SM-never-sent', 'delivered'), NOW);
    expect(res).toEqual({ kind: 'deferred' });
    expect(await otp('otp_c')).toEqual(before);
    expect((await redis.keys('otp:o:*')).length).toBe(1);
    expect(await redis.get(`otp:m:twilio:${m}`)).toBe('otp_c:1');
  });

  it('keeps a report that beats the message id in otp:cb:, capped and expiring within the hour', async () => {
    const early = report('SM-early', 'delivered', { providerStatus: 'delivered' });
    await repo.apply(early, NOW);
    const stored = await redis.lrange('otp:cb:twilio:SM-early', 0, -1);
    expect(stored).toHaveLength(1);
    expect(parseDeliveryReport(stored[0]!)).toEqual(early);
    const ttl = await redis.pttl('otp:cb:twilio:SM-early');
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
    for (let i = 0; i < 30; i++) await repo.apply(report('SM-early', 'sent'), NOW + i);
    expect(await redis.llen('otp:cb:twilio:SM-early')).toBe(20);
  });

  it('on undelivered for the attempt that counts, clears acc and returns the resend with the OTP data', async () => {
    const m = await acceptedOtp('otp_d');
    const res = await repo.apply(report(m, 'undelivered', { errorCode: '30003' }), NOW);
    expect(res).toEqual({
      kind: 'applied',
      otpId: 'otp_d',
      attempt: 1,
      deliveryStatus: 'undelivered',
      changed: true,
      callingCode: '33',
      resend: {
        otpId: 'otp_d',
        to: '+33612345678',
        locale: 'fr',
        sealedCode: 'sealed-blob',
        expiresAt: NOW + 300_000,
        callingCode: '33',
      },
    });
    expect(await otp('otp_d')).toMatchObject({ acc: '', ds: 'undelivered', 'a1.o': 'undelivered', 'a1.e': '30003' });
    expect(await redis.hget('otp:cir:twilio', 'fails')).toBe('1');
    // the same report again neither resends nor counts twice against the provider
    expect(await repo.apply(report(m, 'undelivered'), NOW + 1)).toMatchObject({ changed: false, resend: null });
    expect(await redis.hget('otp:cir:twilio', 'fails')).toBe('1');
  });

  it('gives an approved OTP no resend but records the failure', async () => {
    const m = await acceptedOtp('otp_e', { status: 'approved' });
    const res = await repo.apply(report(m, 'failed', { errorCode: '30006' }), NOW);
    expect(res).toMatchObject({ kind: 'applied', deliveryStatus: 'failed', changed: true, resend: null });
    expect(await otp('otp_e')).toMatchObject({ acc: '1', ds: 'failed', 'a1.o': 'failed' });
  });

  it('gives an OTP expiring within 15 s no resend', async () => {
    const m = await acceptedOtp('otp_f', { exp: NOW + 10_000 });
    const res = await repo.apply(report(m, 'undelivered'), NOW);
    expect(res).toMatchObject({ kind: 'applied', deliveryStatus: 'undelivered', resend: null });
    expect(await otp('otp_f')).toMatchObject({ acc: '1', ds: 'undelivered' });
  });

  it('after a failover, the new attempt that counts replaces the earlier undelivered status', async () => {
    const m1 = await acceptedOtp('otp_g');
    await repo.apply(report(m1, 'undelivered'), NOW);
    // the worker's BEGIN + ACCEPT for attempt 2 through Octopush
    await redis.hset('otp:o:otp_g', {
      na: 2,
      acc: 2,
      provider: 'octopush',
      'a2.p': 'octopush',
      'a2.o': 'accepted',
      'a2.m': 'oct-2',
    });
    await redis.set('otp:m:octopush:oct-2', 'otp_g:2');
    const res = await repo.apply(
      report('oct-2', 'delivered', { provider: 'octopush', providerStatus: 'DELIVERED' }),
      NOW + 5,
    );
    expect(res).toMatchObject({ attempt: 2, deliveryStatus: 'delivered', changed: true, resend: null });
    // a late report for the first attempt does not touch the OTP's status
    await repo.apply(report(m1, 'failed'), NOW + 6);
    expect(await otp('otp_g')).toMatchObject({ ds: 'delivered', 'a1.o': 'undelivered', 'a2.o': 'delivered' });
  });

  it('a late delivered receipt for an earlier attempt makes it count again, and lists the resend for the sweep', async () => {
    const m1 = await acceptedOtp('otp_late');
    const first = await repo.apply(report(m1, 'undelivered'), NOW);
    expect(first).toMatchObject({ resend: expect.objectContaining({ otpId: 'otp_late' }) });
    expect(await redis.zscore('otp:unstarted', 'otp_late')).not.toBeNull();
    // Twilio changes its mind: undelivered is final, nothing moves
    await repo.apply(report(m1, 'delivered'), NOW + 1);
    expect(await otp('otp_late')).toMatchObject({ acc: '', ds: 'undelivered' });
    // a resend that went out through Octopush is reported delivered later: it counts
    await redis.hset('otp:o:otp_late', { na: 2, 'a2.p': 'octopush', 'a2.o': 'no_receipt', 'a2.m': 'oct-late' });
    await redis.set('otp:m:octopush:oct-late', 'otp_late:2');
    await repo.apply(report('oct-late', 'delivered', { provider: 'octopush', providerStatus: 'DELIVERED' }), NOW + 2);
    expect(await otp('otp_late')).toMatchObject({ acc: '2', ds: 'delivered', provider: 'octopush' });
  });

  it('ignores a report whose OTP record is gone', async () => {
    await redis.set('otp:m:twilio:SM-gone', 'otp_h:1');
    expect(await repo.apply(report('SM-gone', 'delivered'), NOW)).toEqual({ kind: 'ignored', reason: 'unknown_otp' });
    expect(await redis.exists('otp:o:otp_h')).toBe(0);
  });
});
