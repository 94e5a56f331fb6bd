import { describe, expect, it } from 'vitest';
import { EnvReader } from './env-reader.js';
import { readStatusWebhookConfig, webhookUrlProblem } from './status-webhooks.config.js';
import { isPrivateAddress, signWebhook, webhookSecretKey } from './status-webhooks.js';

const SECRET = `whsec_${Buffer.from('k'.repeat(32)).toString('base64')}`;

describe('status webhooks', () => {
  it('private, loopback, link-local and mapped addresses are private; public ones are not', () => {
    for (const a of [
      '127.0.0.1',
      '10.1.2.3',
      '172.20.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
    ]) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ['::1', '::', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '64:ff9b::10.0.0.1']) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ['93.184.215.14', '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8']) {
      expect(isPrivateAddress(a), a).toBe(false);
    }
    expect(isPrivateAddress('not-an-ip')).toBe(true);
  });

  it('a secret is whsec_ and base64 of 24+ bytes; one signature per secret', () => {
    expect(webhookSecretKey(SECRET)?.length).toBe(32);
    expect(webhookSecretKey('whsec_short')).toBeNull();
    expect(webhookSecretKey(Buffer.from('k'.repeat(32)).toString('base64'))).toBeNull();
    const sig = signWebhook([SECRET, SECRET], 'id', 1, '{}');
    expect(sig).toMatch(/^v1,[A-Za-z0-9+/]+=* v1,[A-Za-z0-9+/]+=*$/);
  });

  it('an endpoint on loopback or a private address is refused unless allowed; TLS in production', () => {
    const opts = { production: false, allowInsecureHttp: false, allowPrivateNetworks: false };
    expect(webhookUrlProblem('http://127.0.0.1:8080/hook', opts)).toMatch(/private/);
    expect(webhookUrlProblem('http://localhost/hook', opts)).toMatch(/private/);
    expect(webhookUrlProblem('http://[::1]/hook', opts)).toMatch(/private/);
    expect(webhookUrlProblem('http://10.0.0.5/hook', { ...opts, allowPrivateNetworks: true })).toBeNull();
    expect(webhookUrlProblem('https://hooks.example.com/otp', opts)).toBeNull();
    expect(webhookUrlProblem('http://hooks.example.com/otp', { ...opts, production: true })).toMatch(/https/);
  });

  it('the configuration names each problem', () => {
    const r = new EnvReader({
      STATUS_WEBHOOK_URL: 'http://127.0.0.1/hook',
      STATUS_WEBHOOK_SECRET: `${SECRET},whsec_bad`,
    });
    readStatusWebhookConfig(r, { production: false, allowInsecureHttp: false });
    expect(r.problems).toEqual([
      expect.stringMatching(/^STATUS_WEBHOOK_URL points at a loopback or private address/),
      expect.stringMatching(/^STATUS_WEBHOOK_SECRET entry 2 must be whsec_/),
    ]);
    const missing = new EnvReader({ STATUS_WEBHOOK_URL: 'https://hooks.example.com/otp' });
    readStatusWebhookConfig(missing, { production: false, allowInsecureHttp: false });
    expect(missing.problems).toEqual([expect.stringMatching(/^STATUS_WEBHOOK_SECRET is required/)]);
  });
});
