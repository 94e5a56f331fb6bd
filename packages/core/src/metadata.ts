/**
 * Correlation metadata: string pairs a backend attaches to an OTP at send time (its user id, a session, a flow
 * name), kept on the OTP record, returned by `GET /v1/otp/{id}` and carried in every status webhook. Bounded so a
 * record stays small: at most METADATA_LIMITS.maxPairs pairs, keys of letters, digits and `_.-:`, values of
 * printable text. Never the place for a secret: it is echoed to whoever reads the OTP or receives its events.
 */
export type Metadata = Readonly<Record<string, string>>;

export const METADATA_LIMITS = Object.freeze({ maxPairs: 10, maxKeyLength: 40, maxValueLength: 256 });

/** The pattern of a metadata key (the API schema uses it too). */
export const METADATA_KEY_PATTERN = '^[A-Za-z0-9_.:-]{1,40}$';

/**
 * Checks metadata as the API received it: null when it is acceptable, else what is wrong (one sentence, naming the
 * key but never echoing a value).
 */
export function metadataProblem(m: unknown): string | null {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return 'metadata must be an object of string pairs';
  const entries = Object.entries(m as Record<string, unknown>);
  if (entries.length > METADATA_LIMITS.maxPairs) return `metadata holds at most ${METADATA_LIMITS.maxPairs} pairs`;
  const keyFormat = new RegExp(METADATA_KEY_PATTERN);
  for (const [k, v] of entries) {
    if (!keyFormat.test(k)) return `metadata key "${k.slice(0, 40)}" must be 1-40 letters, digits or _.:-`;
    if (typeof v !== 'string') return `metadata value of "${k}" must be a string`;
    if (v.length > METADATA_LIMITS.maxValueLength) {
      return `metadata value of "${k}" is longer than ${METADATA_LIMITS.maxValueLength} characters`;
    }
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
    if (/[\u0000-\u001f\u007f]/.test(v)) return `metadata value of "${k}" holds control characters`;
  }
  return null;
}

/** Metadata as stored on the record: '' when none, else its JSON (keys sorted, so equal metadata store alike). */
export function encodeMetadata(m: Metadata | undefined): string {
  if (!m || Object.keys(m).length === 0) return '';
  return JSON.stringify(Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : 1))));
}

/** The stored form back as metadata ({} when none or unreadable). */
export function decodeMetadata(s: string | undefined | null): Metadata {
  if (!s) return {};
  try {
    const v = JSON.parse(s) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Metadata) : {};
  } catch {
    return {};
  }
}
