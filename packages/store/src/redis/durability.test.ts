import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createReplicaWait } from './durability.js';

/** A connection whose WAIT answers `acks` after `ms`, counting the WAITs it was sent. */
function fakeRedis(acks: number, ms = 20) {
  const calls: number[] = [];
  const redis = {
    wait: (replicas: number) => {
      calls.push(replicas);
      return new Promise<number>((r) => setTimeout(() => r(acks), ms));
    },
  } as unknown as Redis;
  return { redis, calls };
}

describe('createReplicaWait', () => {
  it('answers true at once, with no WAIT, when no replica is asked for', async () => {
    const { redis, calls } = fakeRedis(0);
    expect(await createReplicaWait(redis, 0)()).toBe(true);
    expect(calls).toEqual([]);
  });

  it('says false when fewer replicas than asked acknowledged in time', async () => {
    const { redis } = fakeRedis(0);
    expect(await createReplicaWait(redis, 1)()).toBe(false);
  });

  it('serves many concurrent callers with two WAITs: the running one, and one after it for the late comers', async () => {
    const { redis, calls } = fakeRedis(1);
    const wait = createReplicaWait(redis, 1);
    const first = wait();
    const late = Array.from({ length: 9 }, () => wait());
    expect(await Promise.all([first, ...late])).toEqual(Array(10).fill(true));
    expect(calls).toEqual([1, 1]);
    // Once both finished, the next caller gets a WAIT of its own.
    expect(await wait()).toBe(true);
    expect(calls).toHaveLength(3);
  });
});
