import { describe, expect, it } from 'vitest';
import { createCredentialCheck } from './auth.js';

describe('createCredentialCheck', () => {
  const check = createCredentialCheck({ user: 'admin', password: 'correct-horse-battery' });

  it('accepts only the exact user and password', () => {
    expect(check('admin', 'correct-horse-battery')).toBe(true);
    expect(check('admin', 'correct-horse-batter')).toBe(false);
    expect(check('admin', 'correct-horse-battery ')).toBe(false);
    expect(check('Admin', 'correct-horse-battery')).toBe(false);
    expect(check('', '')).toBe(false);
  });

  it('compares inputs of any length without throwing (timingSafeEqual needs equal lengths)', () => {
    expect(check('a'.repeat(10_000), 'b')).toBe(false);
  });
});
