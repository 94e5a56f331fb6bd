import { describe, expect, it } from 'vitest';
import { rateLimitedErrorSink } from './errors.js';

describe('rateLimitedErrorSink', () => {
  it('regression: counts every background error but logs one per source every 10 s, with the number suppressed', () => {
    let t = 0;
    const lines: { obj: Record<string, unknown>; msg: string }[] = [];
    const counted: string[] = [];
    const sink = rateLimitedErrorSink(
      { error: (obj, msg) => lines.push({ obj, msg }) },
      (source) => counted.push(source),
      { now: () => t },
    );
    for (let i = 0; i < 1000; i++) {
      t = i * 5; // a reconnect failing every 5 ms for 5 s
      sink('redis', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    }
    sink('queue', new Error('Connection is closed.'));
    t = 10_000;
    sink('redis', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    expect(counted.filter((s) => s === 'redis')).toHaveLength(1001);
    expect(counted.filter((s) => s === 'queue')).toHaveLength(1);
    expect(lines.map((l) => [l.msg, l.obj.suppressed])).toEqual([
      ['redis error', 0],
      ['queue error', 0],
      ['redis error', 999],
    ]);
    expect(lines[0]?.obj.err).toEqual({ message: 'connect ECONNREFUSED 127.0.0.1:6379' });
  });
});
