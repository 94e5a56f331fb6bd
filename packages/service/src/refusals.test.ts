import { GatewayError } from '@otp-gateway/core';
import { type ErrorSource, setStoreErrorSink } from '@otp-gateway/store';
import { afterEach, describe, expect, it } from 'vitest';
import { store } from './refusals.js';

afterEach(() => setStoreErrorSink(() => {}));

describe('a store step that fails', () => {
  it('regression: is answered 503 and its cause goes to the process sink (a Redis refusing writes was silent)', async () => {
    const seen: [ErrorSource, string][] = [];
    setStoreErrorSink((source, err) => seen.push([source, (err as Error).message]));
    const oom = new Error("OOM command not allowed when used memory > 'maxmemory'.");
    const answer = await store(() => Promise.reject(oom)).catch((e: unknown) => e);
    expect(answer).toBeInstanceOf(GatewayError);
    expect(answer).toMatchObject({ statusCode: 503, code: 'store_unavailable' });
    expect(seen).toEqual([['request', oom.message]]);
  });
});
