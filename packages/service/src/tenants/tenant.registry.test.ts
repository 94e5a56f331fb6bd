import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@otp-gateway/core';
import { describe, expect, it } from 'vitest';
import { createTenantRegistry } from './tenant.registry.js';

const configWith = (file: string) =>
  loadConfig(
    {
      OTP_SECRET: 'tenant-registry-test-secret-0123456789abcdef',
      API_KEYS: 'shop:shop-secret-0123456789',
      TENANTS_FILE: file,
    },
    'api',
  );

describe('a tenants file that does not parse', () => {
  it('regression: is refused without quoting it (node quotes the JSON around the error: a secret)', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'otp-tenants-')), 'tenants.json');
    writeFileSync(file, '{"keys": {"a": {"secret": shop-secret-that-must-not-leak}}}');
    let message = '';
    try {
      createTenantRegistry(configWith(file));
    } catch (e) {
      message = String((e as Error).message);
    }
    expect(message).toContain("is not valid JSON: Unexpected token 's'");
    expect(message).not.toContain('shop-secre');
  });

  it('a JSON error with a position says the line and column', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'otp-tenants-')), 'tenants.json');
    writeFileSync(file, '{\n  "keys": {"a": {"secret": "a-secret-0123456789" "x"}}\n}');
    expect(() => createTenantRegistry(configWith(file))).toThrow(/is not valid JSON: at line 2, column \d+/);
  });

  it('a YAML one says the line and column', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'otp-tenants-')), 'tenants.yaml');
    writeFileSync(file, 'keys:\n  a:\n    secret: "unterminated-secret-0123\n');
    expect(() => createTenantRegistry(configWith(file))).toThrow(/is not valid YAML: .*line \d+, column \d+/);
  });
});

describe("a key's own webhook endpoint in production", () => {
  const WH = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
  const prodConfig = (file: string, extra: Record<string, string>) =>
    loadConfig(
      {
        NODE_ENV: 'production',
        OTP_SECRET: 'tenant-registry-test-secret-0123456789abcdef',
        API_KEYS: 'shop:shop-secret-0123456789',
        OTP_ALLOWED_COUNTRIES: 'FR',
        TENANTS_FILE: file,
        ...extra,
      },
      'api',
    );

  it('regression: follows ALLOW_INSECURE_HTTP as STATUS_WEBHOOK_URL does (it was refused whatever the setting)', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'otp-tenants-')), 'tenants.json');
    const webhook = { url: 'http://hooks.example.com/otp', secrets: [WH] };
    writeFileSync(file, JSON.stringify({ keys: { shop: { secret: 'shop-secret-0123456789', webhook } } }));
    expect(() => createTenantRegistry(prodConfig(file, {}))).toThrow(
      /TENANTS_FILE key shop: webhook url must be https/,
    );
    const allowed = createTenantRegistry(prodConfig(file, { ALLOW_INSECURE_HTTP: 'true' }));
    expect(allowed.current().byName.get('shop')?.webhook?.url).toBe(webhook.url);
  });
});
