import { createHash } from 'node:crypto';
import calculateSlot from 'cluster-key-slot';

/**
 * The key space: every key the gateway writes is `{prefix}:{tag}:rest`, where `{tag}` is a Redis Cluster hash tag
 * (the part between the first braces decides the slot). Every key of one atomic operation shares its tag, so each
 * script touches one slot and the same code runs on one Redis and on a cluster. The owner files build their keys
 * through a Keyspace; nothing else spells a tag.
 *
 * Tags in use:
 * - `{p<xyz>}`: an OTP partition (4096 of them, xyz the partition in hex): the OTP records, the number record and the
 *   partition's due set (see otp/otp.record.ts). The partition comes from the number token, which is keyed: nobody
 *   can aim traffic at one node.
 * - `{r<xyz>}`: request rate counters, `{i<xyz>}`: idempotency records, `{m<xyz>}`: the message index; xyz is a hash
 *   bucket of the subject, so a caller-chosen string (an IP, an Idempotency-Key, a message id) never picks a slot.
 * - `{g<xyz>}`: an abuse guard's state for one subject (a number range, a country, an API key; see
 *   guards/guard.record.ts), xyz a hash bucket of the subject: a pumping run on one range heats one bucket only.
 * - `{gb}`: the index of active guard blocks (written only when a block starts or is lifted: cold).
 * - `{cir}`: the provider circuits, all in one slot so one script picks among providers.
 * - `{q<n>...}`: a send queue shard (BullMQ's keys for that shard; see jobs/send-jobs.ts).
 * - `{ev}`: the status events queue (BullMQ's keys; see events/status-events.ts).
 */
export interface Keyspace {
  readonly prefix: string;
  /** `prefix:{tag}:rest`. */
  key(tag: string, rest: string): string;
}

/** How many OTP partitions there are: ids carry theirs, so this never changes. */
export const PARTITIONS = 4096;

export function createKeyspace(prefix: string): Keyspace {
  return Object.freeze({ prefix, key: (tag: string, rest: string) => `${prefix}:{${tag}}:${rest}` });
}

/** The partition tag of a number token (its first three hex digits). */
export const partitionTag = (token: string): string => `p${token.slice(0, 3)}`;

/** The partition tag of partition `n` (0..4095). */
export const partitionTagOf = (n: number): string => `p${n.toString(16).padStart(3, '0')}`;

/** A hash-bucket tag for a subject: `kind` and 3 hex digits of its SHA-256. */
export function bucketTag(kind: 'r' | 'i' | 'm' | 'g', subject: string): string {
  return kind + createHash('sha256').update(subject).digest('hex').slice(0, 3);
}

/** The hash slot of a key (for tests and for spreading queue shards). */
export const slotOf = (key: string): number => calculateSlot(key);

/**
 * The tag of send queue shard `shard` of `shards`: `q<shard>` with the smallest suffix whose slot falls in the
 * shard's share of the 16384 slots. Clusters split slots into even ranges, so shards land on every master
 * as soon as there are at least as many shards as masters.
 */
export function shardTag(shard: number, shards: number): string {
  const lo = Math.floor((shard * 16384) / shards);
  const hi = Math.floor(((shard + 1) * 16384) / shards);
  for (let k = 0; ; k++) {
    const tag = k === 0 ? `q${shard}` : `q${shard}.${k}`;
    const slot = calculateSlot(tag);
    if (slot >= lo && slot < hi) return tag;
  }
}
