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
