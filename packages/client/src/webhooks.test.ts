import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { verifyWebhook, WebhookVerificationError } from './webhooks.js';

const SECRET = `whsec_${Buffer.from('s'.repeat(32)).toString('base64')}`;
const OLD = `whsec_${Buffer.from('o'.repeat(32)).toString('base64')}`;
const body = JSON.stringify({ type: 'otp.delivered', timestamp: '2026-01-01T00:00:00.000Z', data: { id: 'otp_1' } });

/** Headers as the standardwebhooks library signs them (the reference implementation). */
function signed(secret: string, at = new Date()) {
  const ts = Math.floor(at.getTime() / 1000);
  return {
    'webhook-id': 'evt_1',
    'webhook-timestamp': String(ts),
    'webhook-signature': new Webhook(secret).sign('evt_1', at, body),
  };
}

describe('verifyWebhook', () => {
  it('accepts what the reference library signs, from a plain object or a Headers', async () => {
    expect((await verifyWebhook(body, signed(SECRET), SECRET)).type).toBe('otp.delivered');
    expect((await verifyWebhook(body, new Headers(signed(SECRET)), [OLD, SECRET])).data.id).toBe('otp_1');
  });

  it('refuses another secret, a changed body, a stale timestamp, missing headers', async () => {
    await expect(verifyWebhook(body, signed(OLD), SECRET)).rejects.toBeInstanceOf(WebhookVerificationError);
    await expect(verifyWebhook(`${body} `, signed(SECRET), SECRET)).rejects.toThrow(/signature/);
    const old = signed(SECRET, new Date(Date.now() - 600_000));
    await expect(verifyWebhook(body, old, SECRET)).rejects.toThrow(/timestamp/);
    await expect(verifyWebhook(body, {}, SECRET)).rejects.toThrow(/headers/);
  });

  it("accepts the gateway's space-separated rotation form of the secrets in one string", async () => {
    expect((await verifyWebhook(body, signed(SECRET), `${OLD} ${SECRET}`)).type).toBe('otp.delivered');
  });

  it('regression: a tolerance that is not a number refuses to verify (NaN let every replay through)', async () => {
    const old = signed(SECRET, new Date(Date.now() - 86_400_000));
    await expect(verifyWebhook(body, old, SECRET, { toleranceSeconds: Number(undefined) })).rejects.toThrow(
      /toleranceSeconds/,
    );
    await expect(verifyWebhook(body, signed(SECRET), 'whsec_%%%%')).rejects.toThrow(/whsec_/);
  });
});
