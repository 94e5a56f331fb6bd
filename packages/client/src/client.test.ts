import { afterEach, describe, expect, it, vi } from 'vitest';
import { createOtpClient, MAX_RETRY_DELAY_MS } from './client.js';
import { isOtpGatewayError, OtpGatewayError } from './errors.js';
import type { FetchInit, FetchLike, FetchResponse } from './types.js';

const BASE = 'https://otp.example.test/gw';
const KEY = 'secret-api-key-0123456789';
const ID = 'otp_0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const SENT = { id: ID, status: 'pending', deliveryStatus: 'queued', phoneNumber: '+33612345678', expiresAt: 'x' };
const VIEW = { ...SENT, provider: null, createdAt: 'y', attempts: [] };

interface Call {
  readonly url: string;
  readonly init: FetchInit;
  readonly at: number;
}

type Step = (call: Call) => FetchResponse | Promise<FetchResponse>;

const json = (status: number, body: unknown, headers: Record<string, string> = {}): FetchResponse => ({
  status,
  headers: { get: (name) => headers[name.toLowerCase()] ?? null },
  text: async () => JSON.stringify(body),
});
const apiError = (status: number, code: string, extra: Record<string, unknown> = {}, headers = {}) =>
  json(status, { error: { code, message: `refused: ${code}` }, ...extra }, headers);
const networkDown = (): never => {
  throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:1') });
};
/** Answers only when aborted, as a real fetch does when the server never answers. */
const hang = (call: Call) =>
  new Promise<FetchResponse>((_, reject) =>
    call.init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))),
  );

/** A fetch that plays `steps` in order and records each call. */
function fakeFetch(...steps: Step[]) {
  const calls: Call[] = [];
  const fetch: FetchLike = async (url, init) => {
    const call = { url, init, at: Date.now() };
    calls.push(call);
    const step = steps[calls.length - 1];
    if (!step) throw new Error(`unexpected call ${calls.length}: ${init.method} ${url}`);
    return step(call);
  };
  return { fetch, calls, bodies: () => calls.map((c) => JSON.parse(c.init.body ?? 'null')) };
}

const client = (fetch: FetchLike, timeoutMs?: number) =>
  createOtpClient({ baseUrl: `${BASE}/`, apiKey: KEY, fetch, timeoutMs });

async function caught(p: Promise<unknown>): Promise<OtpGatewayError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(OtpGatewayError);
    return e as OtpGatewayError;
  }
  throw new Error('expected a rejection');
}

afterEach(() => {
  vi.useRealTimers();
});

describe('send', () => {
  it('posts the number and locale with the key and a generated Idempotency-Key, and resolves the answer', async () => {
    const f = fakeFetch(() => json(202, SENT));
    await expect(client(f.fetch).send('+33612345678', { locale: 'fr' })).resolves.toEqual(SENT);
    const [call] = f.calls;
    expect(call?.url).toBe(`${BASE}/v1/otp/send`);
    expect(call?.init.method).toBe('POST');
    expect(call?.init.headers).toMatchObject({
      authorization: `Bearer ${KEY}`,
      'content-type': 'application/json',
      'idempotency-key': expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
    });
    expect(f.bodies()).toEqual([{ phoneNumber: '+33612345678', locale: 'fr' }]);
  });

  it('generates a different Idempotency-Key for each send, and uses the one given', async () => {
    const f = fakeFetch(
      () => json(202, SENT),
      () => json(202, SENT),
      () => json(202, SENT),
    );
    const otp = client(f.fetch);
    await otp.send('+33612345678');
    await otp.send('+33612345678');
    await otp.send('+33612345678', { idempotencyKey: 'signup-42' });
    const keys = f.calls.map((c) => c.init.headers['idempotency-key']);
    expect(new Set(keys).size).toBe(3);
    expect(keys[2]).toBe('signup-42');
    expect(f.bodies()[0]).toEqual({ phoneNumber: '+33612345678' });
  });

  it('regression: refuses an Idempotency-Key the gateway would refuse, without a request and without quoting it', async () => {
    // a space or a line break: the gateway answers 400, or fetch throws with the value in its message (taken for
    // a network error, and retried)
    const f = fakeFetch();
    for (const idempotencyKey of ['signup 42', 'signup-42\n', '', 'k'.repeat(129), 'clé']) {
      const thrown = await client(f.fetch)
        .send('+33612345678', { idempotencyKey })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(thrown).toBeInstanceOf(TypeError);
      expect(String(thrown)).not.toContain('signup');
    }
    expect(f.calls).toHaveLength(0);
  });

  it('retries once after a network error, with the same Idempotency-Key', async () => {
    const f = fakeFetch(networkDown, () => json(202, SENT));
    await expect(client(f.fetch).send('+33612345678')).resolves.toEqual(SENT);
    expect(f.calls).toHaveLength(2);
    expect(f.calls[1]?.init.headers['idempotency-key']).toBe(f.calls[0]?.init.headers['idempotency-key']);
    expect(f.bodies()[1]).toEqual(f.bodies()[0]);
  });

  it('retries once after a timeout, with the same Idempotency-Key', async () => {
    const f = fakeFetch(hang, () => json(202, SENT));
    await expect(client(f.fetch, 50).send('+33612345678', { idempotencyKey: 'k' })).resolves.toEqual(SENT);
    expect(f.calls.map((c) => c.init.headers['idempotency-key'])).toEqual(['k', 'k']);
  });

  it('retries a 503 after its Retry-After, not before', async () => {
    vi.useFakeTimers();
    const f = fakeFetch(
      () => apiError(503, 'store_unavailable', {}, { 'retry-after': '1' }),
      () => json(202, SENT),
    );
    const sent = client(f.fetch).send('+33612345678');
    await vi.advanceTimersByTimeAsync(999);
    expect(f.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    await expect(sent).resolves.toEqual(SENT);
    expect(f.calls).toHaveLength(2);
    expect(f.calls[1]?.init.headers['idempotency-key']).toBe(f.calls[0]?.init.headers['idempotency-key']);
  });

  it('caps the wait a 503 asks for', async () => {
    vi.useFakeTimers();
    const f = fakeFetch(
      () => apiError(503, 'store_unavailable', {}, { 'retry-after': '3600' }),
      () => json(202, SENT),
    );
    const sent = client(f.fetch).send('+33612345678');
    await vi.advanceTimersByTimeAsync(MAX_RETRY_DELAY_MS);
    await expect(sent).resolves.toEqual(SENT);
    expect(f.calls[1]!.at - f.calls[0]!.at).toBe(MAX_RETRY_DELAY_MS);
  });

  it('throws the second failure when the retry fails too, after exactly two calls', async () => {
    const f = fakeFetch(
      () => apiError(503, 'store_unavailable', {}, { 'retry-after': '0' }),
      () => apiError(503, 'store_unavailable', {}, { 'retry-after': '0' }),
    );
    const err = await caught(client(f.fetch).send('+33612345678'));
    expect(err).toMatchObject({ status: 503, code: 'store_unavailable', retryAfterSeconds: 0 });
    expect(f.calls).toHaveLength(2);

    const down = fakeFetch(networkDown, networkDown);
    expect(await caught(client(down.fetch).send('+33612345678'))).toMatchObject({ code: 'network_error' });
    expect(down.calls).toHaveLength(2);
  });

  it.each([
    [400, 'invalid_phone_number'],
    [401, 'unauthorized'],
    [403, 'country_not_allowed'],
    [422, 'idempotency_key_reused'],
    [429, 'resend_cooldown'],
    [500, 'internal_error'],
  ])('does not retry a %i (%s) and throws it', async (status, code) => {
    const f = fakeFetch(() => apiError(status, code, {}, status === 429 ? { 'retry-after': '30' } : {}));
    const err = await caught(client(f.fetch).send('+33612345678'));
    expect(err).toMatchObject({ status, code, message: `refused: ${code}` });
    expect(err.retryAfterSeconds).toBe(status === 429 ? 30 : undefined);
    expect(f.calls).toHaveLength(1);
  });
});

describe('verify', () => {
  const CODE = '482913';

  it('posts { id, code } or { phoneNumber, code } and resolves ok on 200', async () => {
    const f = fakeFetch(
      () => json(200, { id: ID, status: 'approved' }),
      () => json(200, { id: ID, status: 'approved' }),
    );
    const otp = client(f.fetch);
    await expect(otp.verify({ id: ID }, CODE)).resolves.toEqual({ ok: true, id: ID, status: 'approved' });
    await expect(otp.verify({ phoneNumber: '+33612345678' }, CODE)).resolves.toEqual({
      ok: true,
      id: ID,
      status: 'approved',
    });
    expect(f.calls.map((c) => c.url)).toEqual([`${BASE}/v1/otp/verify`, `${BASE}/v1/otp/verify`]);
    expect(f.bodies()).toEqual([
      { id: ID, code: CODE },
      { phoneNumber: '+33612345678', code: CODE },
    ]);
  });

  it('resolves a wrong code as a refusal with the attempts left', async () => {
    const f = fakeFetch(() => apiError(422, 'wrong_code', { id: ID, status: 'pending', attemptsRemaining: 2 }));
    await expect(client(f.fetch).verify({ id: ID }, CODE)).resolves.toEqual({
      ok: false,
      code: 'wrong_code',
      message: 'refused: wrong_code',
      id: ID,
      status: 'pending',
      attemptsRemaining: 2,
    });
  });

  it.each([
    [404, 'otp_not_found'],
    [409, 'already_approved'],
    [410, 'otp_expired'],
    [410, 'otp_replaced'],
    [410, 'otp_failed'],
    [423, 'otp_locked'],
  ])('resolves a %i %s as a refusal', async (status, code) => {
    const f = fakeFetch(() => apiError(status, code));
    await expect(client(f.fetch).verify({ id: ID }, CODE)).resolves.toMatchObject({ ok: false, code });
  });

  it('resolves a 429 as a refusal with its Retry-After', async () => {
    const f = fakeFetch(() => apiError(429, 'number_locked', {}, { 'retry-after': '900' }));
    await expect(client(f.fetch).verify({ phoneNumber: '+33612345678' }, CODE)).resolves.toEqual({
      ok: false,
      code: 'number_locked',
      message: 'refused: number_locked',
      retryAfterSeconds: 900,
    });
  });

  it.each([
    [400, 'invalid_code_format'],
    [400, 'invalid_phone_number'],
    [401, 'unauthorized'],
    [404, 'not_found'],
    [500, 'internal_error'],
    [503, 'store_unavailable'],
  ])('throws a %i %s, without retrying', async (status, code) => {
    const f = fakeFetch(() => apiError(status, code));
    expect(await caught(client(f.fetch).verify({ id: ID }, CODE))).toMatchObject({ status, code });
    expect(f.calls).toHaveLength(1);
  });

  it('throws a network error without retrying (a repeated wrong code would cost a second try)', async () => {
    const f = fakeFetch(networkDown);
    const err = await caught(client(f.fetch).verify({ id: ID }, CODE));
    expect(err).toMatchObject({ code: 'network_error', status: undefined });
    expect(err.cause).toBeInstanceOf(TypeError);
    expect(f.calls).toHaveLength(1);
  });

  it('never puts the code or the API key in an error', async () => {
    const failures: Step[] = [
      () => apiError(400, 'invalid_code_format'),
      () => json(502, '<html>bad gateway</html>'),
      networkDown,
      hang,
    ];
    for (const step of failures) {
      const err = await caught(client(fakeFetch(step).fetch, 20).verify({ phoneNumber: '+33612345678' }, CODE));
      const seen = `${String(err)}\n${err.stack}\n${JSON.stringify(err)}\n${JSON.stringify(err.cause ?? null)}`;
      expect(seen).not.toContain(CODE);
      expect(seen).not.toContain(KEY);
      expect(seen).not.toContain('12345678');
    }
  });

  it('refuses a target that is neither { id } nor { phoneNumber } without calling', async () => {
    const f = fakeFetch();
    await expect(client(f.fetch).verify({} as never, CODE)).rejects.toThrow(TypeError);
    expect(f.calls).toHaveLength(0);
  });
});

describe('get, status and health', () => {
  it('get reads /v1/otp/{id} and resolves the view', async () => {
    const f = fakeFetch(() => json(200, VIEW));
    await expect(client(f.fetch).get(ID)).resolves.toEqual(VIEW);
    expect(f.calls[0]?.url).toBe(`${BASE}/v1/otp/${ID}`);
    expect(f.calls[0]?.init).toMatchObject({ method: 'GET', headers: { authorization: `Bearer ${KEY}` } });
    expect(f.calls[0]?.init.body).toBeUndefined();
  });

  it('regression: get answers otp_not_found for an id the gateway never makes, without a request', async () => {
    // `..` and `.` survived encodeURIComponent and were resolved by the URL (GET /v1/, a 404 of another kind);
    // `status` reached the status route (400)
    const f = fakeFetch();
    for (const id of ['..', '.', 'status', '../readyz?x', `${ID}x`, ID.toUpperCase()]) {
      expect(await caught(client(f.fetch).get(id))).toMatchObject({ status: 404, code: 'otp_not_found' });
    }
    expect(f.calls).toHaveLength(0);
  });

  it('status URL-encodes the number: + travels as %2B', async () => {
    const f = fakeFetch(() => json(200, VIEW));
    await expect(client(f.fetch).status('+33612345678')).resolves.toEqual(VIEW);
    expect(f.calls[0]?.url).toBe(`${BASE}/v1/otp/status?phoneNumber=%2B33612345678`);
  });

  it('get and status throw otp_not_found on 404', async () => {
    const f = fakeFetch(
      () => apiError(404, 'otp_not_found'),
      () => apiError(404, 'otp_not_found'),
    );
    expect(await caught(client(f.fetch).get(ID))).toMatchObject({ status: 404, code: 'otp_not_found' });
    expect(await caught(client(f.fetch).status('+33612345678'))).toMatchObject({ status: 404, code: 'otp_not_found' });
  });

  it('get does not retry a network error or a timeout', async () => {
    const down = fakeFetch(networkDown);
    expect(await caught(client(down.fetch).get(ID))).toMatchObject({ code: 'network_error' });
    const slow = fakeFetch(hang);
    const started = Date.now();
    const err = await caught(client(slow.fetch, 50).get(ID));
    expect(err).toMatchObject({
      code: 'timeout',
      status: undefined,
      message: 'GET /v1/otp/{id}: no answer within 50 ms',
    });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(down.calls.length + slow.calls.length).toBe(2);
  });

  it('the deadline covers the body and holds even when fetch ignores its signal', async () => {
    const stalled = fakeFetch(() => ({ status: 200, headers: { get: () => null }, text: () => new Promise(() => {}) }));
    expect(await caught(client(stalled.fetch, 50).get(ID))).toMatchObject({ code: 'timeout' });
    const deaf = fakeFetch(() => new Promise(() => {}));
    expect(await caught(client(deaf.fetch, 50).get(ID))).toMatchObject({ code: 'timeout' });
  });

  it('throws unexpected_response for an answer that is not the gateway JSON', async () => {
    const f = fakeFetch(
      () => ({ status: 502, headers: { get: () => null }, text: async () => '<html>bad gateway</html>' }),
      () => ({ status: 200, headers: { get: () => null }, text: async () => 'ok' }),
    );
    expect(await caught(client(f.fetch).get(ID))).toMatchObject({ status: 502, code: 'unexpected_response' });
    expect(await caught(client(f.fetch).get(ID))).toMatchObject({ status: 200, code: 'unexpected_response' });
  });

  it('regression: a 2xx that is not the gateway answer is unexpected_response, never an approval', async () => {
    // a wrong baseUrl: another service, a proxy's default backend or a stub answering 200 {} to everything
    const other = (status: number, body: unknown) => () => json(status, body);
    const verifies = fakeFetch(
      other(200, {}),
      other(200, { ok: true }),
      other(204, { id: ID, status: 'approved' }),
      other(200, { id: ID, status: 'pending' }),
      // approved, but another OTP than the one asked about
      other(200, { id: ID.replace('0f', 'ff'), status: 'approved' }),
    );
    const otp = client(verifies.fetch);
    for (let i = 0; i < 5; i++) {
      expect(await caught(otp.verify({ id: ID }, '482913'))).toMatchObject({ code: 'unexpected_response' });
    }
    const sends = fakeFetch(other(200, {}), other(200, SENT), other(202, { ...SENT, id: undefined }));
    for (let i = 0; i < 3; i++) {
      expect(await caught(client(sends.fetch).send('+33612345678'))).toMatchObject({ code: 'unexpected_response' });
    }
    const reads = fakeFetch(other(200, {}), other(200, { status: 'ok' }), other(200, {}));
    expect(await caught(client(reads.fetch).get(ID))).toMatchObject({ code: 'unexpected_response' });
    expect(await caught(client(reads.fetch).health())).toMatchObject({ code: 'unexpected_response' });
    expect(await caught(client(reads.fetch).status('+33612345678'))).toMatchObject({ code: 'unexpected_response' });
  });

  it('health reads /readyz without the API key', async () => {
    const f = fakeFetch(
      () => json(200, { status: 'ready' }),
      () => apiError(503, 'store_unavailable'),
    );
    await expect(client(f.fetch).health()).resolves.toEqual({ status: 'ready' });
    expect(f.calls[0]?.url).toBe(`${BASE}/readyz`);
    expect(f.calls[0]?.init.headers['authorization']).toBeUndefined();
    expect(await caught(client(f.fetch).health())).toMatchObject({ status: 503, code: 'store_unavailable' });
  });
});

describe('createOtpClient', () => {
  it.each([
    [{ baseUrl: 'otp.example.test', apiKey: KEY }],
    [{ baseUrl: 'ftp://otp.example.test', apiKey: KEY }],
    [{ baseUrl: 'https://user:pw@otp.example.test', apiKey: KEY }],
    [{ baseUrl: 'https://otp.example.test?x=1', apiKey: KEY }],
    [{ baseUrl: BASE, apiKey: '' }],
    [{ baseUrl: BASE, apiKey: KEY, timeoutMs: 0 }],
    // regression: Node fires a longer timer at once, so every call timed out
    [{ baseUrl: BASE, apiKey: KEY, timeoutMs: 2 ** 31 }],
    // regression: a key read from a file with its line break, refused by fetch with the key in the message
    [{ baseUrl: BASE, apiKey: `${KEY}\n` }],
    [{ baseUrl: BASE, apiKey: 'two words' }],
  ])('refuses invalid options: %j', (options) => {
    expect(() => createOtpClient(options)).toThrow(TypeError);
  });

  it('uses the global fetch when none is given, looked up at call time', async () => {
    const f = fakeFetch(() => json(200, VIEW));
    const otp = createOtpClient({ baseUrl: BASE, apiKey: KEY });
    vi.stubGlobal('fetch', f.fetch);
    try {
      await expect(otp.get(ID)).resolves.toEqual(VIEW);
    } finally {
      vi.unstubAllGlobals();
    }
    expect(f.calls).toHaveLength(1);
  });
});

describe('isOtpGatewayError', () => {
  it('recognises the error by name and code, also from another copy of the package', () => {
    expect(isOtpGatewayError(new OtpGatewayError({ code: 'timeout', message: 'm' }))).toBe(true);
    const lookalike = Object.assign(new Error('m'), { name: 'OtpGatewayError', code: 'unauthorized' });
    expect(isOtpGatewayError(lookalike)).toBe(true);
    expect(isOtpGatewayError(new Error('m'))).toBe(false);
    expect(isOtpGatewayError({ name: 'OtpGatewayError', code: 'x' })).toBe(false);
  });
});
