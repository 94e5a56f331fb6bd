import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, randomInt } from 'node:crypto';

/** Keys derived once from OTP_SECRET; each purpose has its own key. */
export interface OtpKeys {
  readonly hashKey: Buffer;
  readonly encKey: Buffer;
  readonly idemKey: Buffer;
  /** Keys the number token (see numberToken): which partition of the store a number's OTPs live in. */
  readonly numberKey: Buffer;
}

/** Derives the hashing, encryption and idempotency keys from the server secret (HKDF-SHA256). */
export function deriveKeys(secret: string): OtpKeys {
  const ikm = Buffer.from(secret, 'utf8');
  const derive = (info: string) => Buffer.from(hkdfSync('sha256', ikm, 'otp-gateway/v1', info, 32));
  return Object.freeze({
    hashKey: derive('code-hmac'),
    encKey: derive('job-aes-gcm'),
    idemKey: derive('idempotency'),
    numberKey: derive('number-token'),
  });
}

/** The lengths a code may have (OTP_CODE_LENGTH, a key's TENANTS_FILE codeLength). */
export const CODE_LENGTHS = Object.freeze({ min: 6, max: 10 });

/** A uniformly random code of `length` digits (leading zeros allowed). */
export function generateCode(length: number): string {
  let code = '';
  // randomInt is bounded to 2^48, so build long codes from chunks of at most 6 digits.
  for (let left = length; left > 0; left -= 6) {
    const n = Math.min(6, left);
    code += randomInt(0, 10 ** n)
      .toString()
      .padStart(n, '0');
  }
  return code;
}

/** HMAC of a code bound to its OTP id: the only form in which a code is stored. base64url (43 characters). */
export function hashCode(keys: OtpKeys, otpId: string, code: string): string {
  return createHmac('sha256', keys.hashKey).update(otpId).update('\0').update(code).digest('base64url');
}

/**
 * `n` random bytes from a pool refilled 4 KiB at a time (the same CSPRNG, drawn in bulk): a send takes 20 (its id
 * and its code's IV), so one RNG call serves about 200 sends. Each small randomBytes call cost the API more than
 * the bytes: an 8-byte one per send was 6 % of its CPU. Callers use the bytes at once (the pool is replaced, not
 * overwritten, when it runs out).
 */
const pool = { buf: Buffer.alloc(0), at: 0 };
function pooledRandom(n: number): Buffer {
  if (pool.at + n > pool.buf.length) {
    pool.buf = randomBytes(4096);
    pool.at = 0;
  }
  const bytes = pool.buf.subarray(pool.at, pool.at + n);
  pool.at += n;
  return bytes;
}

/** Encrypts a code for a job's data (AES-256-GCM, the OTP id as associated data). base64url of iv|tag|ciphertext. */
export function encryptCode(keys: OtpKeys, otpId: string, code: string): string {
  const iv = pooledRandom(12);
  const cipher = createCipheriv('aes-256-gcm', keys.encKey, iv);
  cipher.setAAD(Buffer.from(otpId));
  const ct = Buffer.concat([cipher.update(code, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url');
}

/** Decrypts what encryptCode made; throws when the data was tampered with or belongs to another OTP. */
export function decryptCode(keys: OtpKeys, otpId: string, sealed: string): string {
  const buf = Buffer.from(sealed, 'base64url');
  const decipher = createDecipheriv('aes-256-gcm', keys.encKey, buf.subarray(0, 12));
  decipher.setAAD(Buffer.from(otpId));
  decipher.setAuthTag(buf.subarray(12, 28));
  return Buffer.concat([decipher.update(buf.subarray(28)), decipher.final()]).toString('utf8');
}

/** Fingerprint of a request body for idempotency (keyed, so stored fingerprints reveal nothing). Hex. */
export function fingerprint(keys: OtpKeys, value: string): string {
  return createHmac('sha256', keys.idemKey).update(value).digest('hex');
}

/**
 * The token of a phone number under an API key: 16 hex digits of a keyed HMAC. It names the number's record in
 * the store without the number in clear, and its first three digits are the store partition of every OTP of that
 * number (see newOtpId). Keyed, so nobody can choose numbers to aim traffic at one partition.
 */
export function numberToken(keys: OtpKeys, keyName: string, phoneNumber: string): string {
  return createHmac('sha256', keys.numberKey)
    .update(keyName)
    .update('\0')
    .update(phoneNumber)
    .digest('hex')
    .slice(0, 16);
}

/** A new OTP id: `otp_` + its number token + 16 random hex digits, so the id alone tells where the OTP lives. */
export function newOtpId(token: string): string {
  return `otp_${token}${pooledRandom(8).toString('hex')}`;
}

/** The shape of an OTP id (32 lower-case hex digits after `otp_`). */
export const OTP_ID_PATTERN = /^otp_[0-9a-f]{32}$/;

/** The number token carried by an OTP id. */
export const tokenOfOtpId = (otpId: string): string => otpId.slice(4, 20);
