import { describe, expect, it } from 'vitest';
import { decryptCode, deriveKeys, encryptCode, generateCode, hashCode, newOtpId, OTP_ID_PATTERN } from './secrets.js';

const keys = deriveKeys('unit-test-secret-0123456789abcdefghijklmnop');

describe('codes', () => {
  it('generates codes of the asked length, digits only, leading zeros kept', () => {
    for (const len of [6, 8, 10]) {
      for (let i = 0; i < 200; i++) expect(generateCode(len)).toMatch(new RegExp(`^\\d{${len}}$`));
    }
  });

  it('spreads codes over the digit space', () => {
    const firsts = new Set(Array.from({ length: 500 }, () => generateCode(6)[0]));
    expect(firsts.size).toBe(10);
  });

  it('binds the hash to the OTP id', () => {
    expect(hashCode(keys, 'otp_a', '123456')).not.toBe(hashCode(keys, 'otp_b', '123456'));
    expect(hashCode(keys, 'otp_a', '123456')).toBe(hashCode(keys, 'otp_a', '123456'));
    expect(hashCode(keys, 'otp_a', '123456')).not.toContain('123456');
  });

  it('seals a code for one OTP only, and detects tampering', () => {
    const sealed = encryptCode(keys, 'otp_a', '654321');
    expect(sealed).not.toContain('654321');
    expect(decryptCode(keys, 'otp_a', sealed)).toBe('654321');
    expect(() => decryptCode(keys, 'otp_b', sealed)).toThrow();
    // one bit of the ciphertext flipped (editing base64 text could change only its padding bits)
    const bytes = Buffer.from(sealed, 'base64url');
    bytes[bytes.length - 1]! ^= 1;
    expect(() => decryptCode(keys, 'otp_a', bytes.toString('base64url'))).toThrow();
    expect(() => decryptCode(deriveKeys('another-secret-0123456789abcdefghijklmn'), 'otp_a', sealed)).toThrow();
  });

  it('draws ids and IVs from the random pool without ever repeating one, across its refills', () => {
    const ids = new Set<string>();
    const ivs = new Set<string>();
    // 20 bytes a send: 2000 sends go through the 4 KiB pool about ten times
    for (let i = 0; i < 2000; i++) {
      const id = newOtpId('0123456789abcdef');
      expect(id).toMatch(OTP_ID_PATTERN);
      ids.add(id);
      const sealed = encryptCode(keys, id, '123456');
      ivs.add(Buffer.from(sealed, 'base64url').subarray(0, 12).toString('hex'));
      expect(decryptCode(keys, id, sealed)).toBe('123456');
    }
    expect(ids.size).toBe(2000);
    expect(ivs.size).toBe(2000);
  });
});
