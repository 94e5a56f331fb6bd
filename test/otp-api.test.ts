import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Answer,
  frMobile,
  KEY_A,
  KEY_B,
  sendJobKey,
  snapshot,
  startTestApi,
  type TestApi,
} from './support/otp-harness.js';

const OTP_ID = /^otp_[0-9a-f]{32}$/;

function expectError(res: Answer, status: number, code: string) {
  expect({ status: res.status, code: (res.body['error'] as { code?: string } | undefined)?.code }).toEqual({
    status,
    code,
  });
  const error = res.body['error'] as Record<string, unknown>;
  expect(Object.keys(error).sort()).toEqual(['code', 'message']);
  expect(error['message']).toEqual(expect.stringMatching(/\S/));
}

let api: TestApi;
let fr: TestApi;

beforeAll(async () => {
  api = await startTestApi({ OTP_RESEND_COOLDOWN_SECONDS: '0', OTP_TTL_SECONDS: '300' });
  fr = await startTestApi({ OTP_ALLOWED_COUNTRIES: 'FR,BE' });
});

afterAll(async () => {
  await api?.close();
  await fr?.close();
});

describe('POST /v1/otp/send', () => {
  it('answers 202 with the OTP id, pending, queued, the E.164 number and the expiry', async () => {
    const before = api.now();
    const res = await api.send('+33612345678');
    expect(res.status).toBe(202);
    expect(Object.keys(res.body).sort()).toEqual(['deliveryStatus', 'expiresAt', 'id', 'phoneNumber', 'status']);
    expect(res.body).toMatchObject({ status: 'pending', deliveryStatus: 'queued', phoneNumber: '+33612345678' });
    expect(res.body['id']).toMatch(OTP_ID);
    const exp = Date.parse(String(res.body['expiresAt']));
    expect(exp - before).toBeGreaterThanOrEqual(300_000 - 50);
    // the expiry is set in Redis when the OTP is stored: after the request's first steps (rate counters)
    expect(exp - before).toBeLessThanOrEqual(300_000 + 3000);
  });

  it('queues one send job whose id is the OTP id and whose data holds the OTP id only', async () => {
    const res = await api.send(frMobile(1), { body: { phoneNumber: frMobile(1), locale: 'fr' } });
    const id = String(res.body['id']);
    const job = await api.job(id);
    expect(job?.id).toBe(id);
    expect(job?.name).toBe('send');
    expect(job?.data).toEqual({ otpId: id });
    const code = await api.codeOf(id);
    expect(code).toMatch(/^\d{6}$/);
    expect(JSON.stringify(await api.db.hgetall(sendJobKey(api, id)))).not.toContain(code);
    expect((await api.verify({ id, code })).status).toBe(200);
  });

  it('normalises the number to E.164 in its answer', async () => {
    const res = await api.send(' +33612345679 ');
    expect(res.status).toBe(202);
    expect(res.body['phoneNumber']).toBe('+33612345679');
  });

  const badNumbers: [string, string, string][] = [
    ['garbage', 'not a number', 'invalid_phone_number'],
    ['0612345678', 'a national number without +', 'invalid_phone_number'],
    ['+3361234567', 'too short for France', 'invalid_phone_number'],
    ['+999123456789', 'an unassigned country code', 'invalid_phone_number'],
    ['+33899123456', 'a French premium-rate number', 'number_type_not_allowed'],
    ['+33891123456', 'another French premium-rate number', 'number_type_not_allowed'],
    ['+33123456789', 'a French fixed line', 'number_type_not_allowed'],
    ['+33800123456', 'a French toll-free number', 'number_type_not_allowed'],
    ['+447012345678', 'a UK personal number', 'number_type_not_allowed'],
    ['+443001234567', 'a UK UAN', 'number_type_not_allowed'],
  ];
  it.each(badNumbers)('refuses %s (%s) with 400 %s and changes nothing', async (phoneNumber, _what, code) => {
    const before = await snapshot(api.db, api.store.prefix);
    const res = await api.send(phoneNumber);
    expectError(res, 400, code);
    expect(await snapshot(api.db, api.store.prefix)).toBe(before);
  });

  const badBodies: [string, Partial<Parameters<TestApi['call']>[2]>][] = [
    ['an extra field', { body: { phoneNumber: '+33612345678', code: '123456' } }],
    ['no phoneNumber', { body: { locale: 'fr' } }],
    ['an empty object', { body: {} }],
    ['a number instead of a string', { body: { phoneNumber: 33612345678 } }],
    ['a malformed locale', { body: { phoneNumber: '+33612345678', locale: 'French!' } }],
    ['an array', { body: ['+33612345678'] }],
    ['malformed JSON', { raw: '{"phoneNumber": "+33612345678"' }],
    ['an empty JSON body', { raw: '' }],
    [
      'an over-long Idempotency-Key',
      { body: { phoneNumber: '+33612345678' }, headers: { 'idempotency-key': 'k'.repeat(129) } },
    ],
  ];
  it.each(badBodies)('refuses a body with %s with 400 and changes nothing', async (_what, opts) => {
    const before = await snapshot(api.db, api.store.prefix);
    const res = await api.call('POST', '/v1/otp/send', opts);
    expectError(res, 400, 'invalid_request');
    expect(await snapshot(api.db, api.store.prefix)).toBe(before);
  });

  it('refuses a request without an API key or with an unknown one with 401 and changes nothing', async () => {
    const before = await snapshot(api.db, api.store.prefix);
    expectError(await api.send('+33612345678', { key: null }), 401, 'unauthorized');
    expectError(await api.send('+33612345678', { key: 'not-a-key-0123456789abcdef' }), 401, 'unauthorized');
    expectError(
      await api.call('POST', '/v1/otp/send', { key: null, headers: { authorization: `Basic ${KEY_A.secret}` } }),
      401,
      'unauthorized',
    );
    expectError(
      await api.verify({ phoneNumber: '+33612345678', code: '123456' }, { key: 'nope' }),
      401,
      'unauthorized',
    );
    expectError(await api.call('GET', '/v1/otp/status?phoneNumber=%2B33612345678', { key: null }), 401, 'unauthorized');
    expect(await snapshot(api.db, api.store.prefix)).toBe(before);
  });
});

describe('OTP_ALLOWED_COUNTRIES', () => {
  it('refuses numbers from other countries with 403 country_not_allowed and changes nothing', async () => {
    const before = await snapshot(fr.db, fr.store.prefix);
    expectError(await fr.send('+447400123456'), 403, 'country_not_allowed');
    expectError(await fr.send('+4915123456789'), 403, 'country_not_allowed');
    expect(await snapshot(fr.db, fr.store.prefix)).toBe(before);
    expect((await fr.send('+33612345678')).status).toBe(202);
    expect((await fr.send('+32470123456')).status).toBe(202);
  });

  it('still rejects a premium-rate number of an allowed country with 400', async () => {
    expectError(await fr.send('+33899123456'), 400, 'number_type_not_allowed');
  });
});

describe('an OTP belongs to the key that created it', () => {
  it('answers 404 to another key on GET by id, GET status and verify, and the owner is unaffected', async () => {
    const phone = frMobile(20);
    const sent = await api.send(phone);
    const id = String(sent.body['id']);
    const code = await api.codeOf(id);
    const asB = { key: KEY_B.secret };

    expectError(await api.call('GET', `/v1/otp/${id}`, asB), 404, 'otp_not_found');
    expectError(
      await api.call('GET', `/v1/otp/status?phoneNumber=${encodeURIComponent(phone)}`, asB),
      404,
      'otp_not_found',
    );
    expectError(await api.verify({ id, code }, asB), 404, 'otp_not_found');
    expectError(await api.verify({ phoneNumber: phone, code }, asB), 404, 'otp_not_found');
    const wrong = code === '000000' ? '111111' : '000000';
    expectError(await api.verify({ id, code: wrong }, asB), 404, 'otp_not_found');

    const own = await api.call('GET', `/v1/otp/${id}`);
    expect(own.status).toBe(200);
    expect(own.body['status']).toBe('pending');
    // B's wrong code cost the owner nothing.
    const ownWrong = await api.verify({ id, code: wrong });
    expect(ownWrong.status).toBe(422);
    expect(ownWrong.body['attemptsRemaining']).toBe(api.config.otp.maxAttempts - 1);
    expect(await api.verify({ id, code })).toMatchObject({ status: 200, body: { id, status: 'approved' } });
  });

  it('answers 404 for an unknown id and for a number that never got a code', async () => {
    expectError(await api.call('GET', `/v1/otp/otp_${'0'.repeat(32)}`), 404, 'otp_not_found');
    expectError(
      await api.call('GET', `/v1/otp/status?phoneNumber=${encodeURIComponent(frMobile(999))}`),
      404,
      'otp_not_found',
    );
    expectError(await api.verify({ id: `otp_${'0'.repeat(32)}`, code: '123456' }), 404, 'otp_not_found');
  });

  it('regression: answers 404 for an id the gateway never makes, as the contract says of unknown ids', async () => {
    // a malformed id was a 400 invalid_request; the contract's GET /v1/otp/{id} fails 404 for an unknown one
    // (past 100 characters, Fastify's default path-segment limit answered 414 with its own body)
    const ids = ['unknown', `otp_${'0'.repeat(31)}`, `OTP_${'0'.repeat(32)}`, `otp_${'g'.repeat(32)}`, 'x'.repeat(150)];
    for (const id of ids) {
      expectError(await api.call('GET', `/v1/otp/${id}`), 404, 'otp_not_found');
    }
    expectError(await api.call('GET', '/v1/otp/unknown', { key: null }), 401, 'unauthorized');
  });
});

describe('GET /v1/otp/{id} and /v1/otp/status', () => {
  it('shows the OTP with the contract fields, never a code or a hash', async () => {
    const phone = frMobile(30);
    const id = String((await api.send(phone)).body['id']);
    const res = await api.call('GET', `/v1/otp/${id}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id,
      status: 'pending',
      deliveryStatus: 'queued',
      provider: null,
      phoneNumber: phone,
      attempts: [],
    });
    for (const f of ['id', 'status', 'deliveryStatus', 'provider', 'phoneNumber', 'expiresAt', 'attempts']) {
      expect(res.body).toHaveProperty(f);
    }
    expect(res.text).not.toContain(await api.codeOf(id));
    expect(res.text).not.toMatch(/hash|code/i);
  });

  it('status answers the newest OTP of the number under the calling key', async () => {
    const phone = frMobile(31);
    const first = String((await api.send(phone)).body['id']);
    const second = String((await api.send(phone)).body['id']);
    expect(second).not.toBe(first);
    const res = await api.call('GET', `/v1/otp/status?phoneNumber=${encodeURIComponent(phone)}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: second, status: 'pending', phoneNumber: phone });
  });

  it('status reads an unencoded + in the query (it arrives as a space) as the + it was', async () => {
    const phone = frMobile(32);
    const id = String((await api.send(phone)).body['id']);
    const res = await api.call('GET', `/v1/otp/status?phoneNumber=${phone}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, phoneNumber: phone });
  });

  it('status refuses a malformed number with 400', async () => {
    expectError(await api.call('GET', '/v1/otp/status?phoneNumber=garbage'), 400, 'invalid_phone_number');
  });
});

describe('verify input', () => {
  it('refuses a code of the wrong length or with letters with 400, without spending an attempt', async () => {
    const phone = frMobile(40);
    const id = String((await api.send(phone)).body['id']);
    const code = await api.codeOf(id);
    const before = await snapshot(api.db, api.store.prefix);
    expectError(await api.verify({ id, code: code.slice(1) }), 400, 'invalid_code_format');
    expectError(await api.verify({ id, code: `${code}1` }), 400, 'invalid_code_format');
    expectError(await api.verify({ id, code: 'abcdef' }), 400, 'invalid_code_format');
    expectError(await api.verify({ code }), 400, 'invalid_request');
    expect((await api.verify({ id, code, extra: 1 })).status).toBe(400);
    expect((await api.verify({ id })).status).toBe(400);
    expect((await api.call('POST', '/v1/otp/verify', { raw: '{"id":' })).status).toBe(400);
    expect(await snapshot(api.db, api.store.prefix)).toBe(before);
    expect(await api.verify({ phoneNumber: phone, code })).toMatchObject({
      status: 200,
      body: { id, status: 'approved' },
    });
  });
});

describe('operational endpoints', () => {
  it('answers /healthz and /readyz', async () => {
    expect(await api.call('GET', '/healthz', { key: null })).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await api.call('GET', '/readyz', { key: null })).toMatchObject({ status: 200, body: { status: 'ready' } });
  });

  it('serves a valid OpenAPI 3 document with the /v1/otp paths, and its viewer at /docs', async () => {
    const res = await api.call('GET', '/openapi.json', { key: null });
    expect(res.status).toBe(200);
    const doc = res.body as {
      openapi: string;
      info: { title: string; version: string };
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(doc.info.title).toEqual(expect.any(String));
    expect(doc.info.version).toEqual(expect.any(String));
    expect(doc.paths['/v1/otp/send']?.['post']?.responses).toHaveProperty('202');
    expect(doc.paths['/v1/otp/verify']?.['post']?.responses).toHaveProperty('200');
    expect(doc.paths['/v1/otp/{id}']?.['get']?.responses).toHaveProperty('404');
    expect(doc.paths['/v1/otp/status']?.['get']?.responses).toHaveProperty('200');
    // Every operation documents responses, and every $ref points at something in the document.
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(Object.keys(op.responses ?? {}).length, `${method} ${path}`).toBeGreaterThan(0);
      }
    }
    const refs = [...res.text.matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      expect(ref.startsWith('#/'), ref).toBe(true);
      let node: unknown = doc;
      for (const part of ref.slice(2).split('/')) node = (node as Record<string, unknown> | undefined)?.[part];
      expect(node, `${ref} resolves`).toBeTypeOf('object');
    }

    const docs = await api.call('GET', '/docs', { key: null });
    expect(docs.status).toBe(200);
    expect(String(docs.headers['content-type'])).toContain('text/html');
  });

  it('answers an unknown route with the contract error body', async () => {
    expectError(await api.call('GET', '/v1/nothing-here'), 404, 'not_found');
  });
});
