import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createReplicaWait } from './durability.js';

/** A connection whose pipelines answer EXISTS from `present` and WAIT with `acks` after `ms`. */
function fakeRedis(acks: number, present: Set<string>, ms = 20) {
  const batches: string[][] = [];
  const redis = {
    pipeline() {
      const cmds: [string, unknown][] = [];
      const add = (c: string, a: unknown) => {
        cmds.push([c, a]);
        return p;
      };
      const p = {
        exists: (k: string) => add('exists', k),
        incr: (k: string) => add('incr', k),
        wait: (n: number) => add('wait', n),
        exec: async () => {
          batches.push(cmds.map(([c, a]) => `${c} ${a}`));
          await new Promise((r) => setTimeout(r, ms));
          return cmds.map(([c, a]) => [
            null,
            c === 'exists' ? (present.has(String(a)) ? 1 : 0) : c === 'wait' ? acks : 1,
          ]);
        },
      };
      return p;
    },
  } as unknown as Redis;
  return { redis, batches };
}

describe('createReplicaWait', () => {
  it('answers true at once, with no round trip, when no replica is asked for', async () => {
    const { redis, batches } = fakeRedis(0, new Set());
    expect(await createReplicaWait(redis, { replicas: 0, markerKey: 'm' })('k')).toBe(true);
    expect(batches).toEqual([]);
  });

  it('checks the record is on this node, writes the marker, then waits, in one pipeline', async () => {
    const { redis, batches } = fakeRedis(1, new Set(['k1']));
    expect(await createReplicaWait(redis, { replicas: 1, markerKey: 'm' })('k1')).toBe(true);
    expect(batches).toEqual([['exists k1', 'incr m', 'wait 1']]);
  });

  it('says false when fewer replicas acknowledged in time, or the record is not on the node it reached', async () => {
    expect(await createReplicaWait(fakeRedis(0, new Set(['k'])).redis, { replicas: 1, markerKey: 'm' })('k')).toBe(
      false,
    );
    expect(await createReplicaWait(fakeRedis(1, new Set()).redis, { replicas: 1, markerKey: 'm' })('k')).toBe(false);
  });

  it('serves concurrent callers with two checks: the running one, and one after it for the late comers', async () => {
    const { redis, batches } = fakeRedis(1, new Set(['a', 'b', 'c', 'd']));
    const durable = createReplicaWait(redis, { replicas: 1, markerKey: 'm' });
    const answers = await Promise.all([durable('a'), durable('b'), durable('c'), durable('x')]);
    expect(answers).toEqual([true, true, true, false]);
    expect(batches).toEqual([
      ['exists a', 'incr m', 'wait 1'],
      ['exists b', 'exists c', 'exists x', 'incr m', 'wait 1'],
    ]);
  });
});
