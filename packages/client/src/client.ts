import { isOtpGatewayError, OtpGatewayError } from './errors.js';
import { type Answer, apiError, errorOf, exchange, successBody } from './http.js';
import type {
  FetchLike,
  HealthResult,
  OtpClient,
  OtpClientOptions,
  OtpStatus,
  OtpView,
  SendResult,
  VerifyRefused,
  VerifyResult,
} from './types.js';

/** Longest wait before the one retry of a send, whatever `Retry-After` says: a backend request is waiting. */
export const MAX_RETRY_DELAY_MS = 2000;
/** Wait before retrying a send after a network error or a timeout, or a 503 without `Retry-After`. */
export const RETRY_DELAY_MS = 200;

/** A value the gateway takes in a header (API key, Idempotency-Key): printable ASCII, no space. */
const HEADER_SAFE = /^[\x21-\x7E]+$/;
/** An OTP id as the gateway makes them. */
const isOtpId = (v: unknown): v is string => typeof v === 'string' && /^otp_[0-9a-f]{32}$/.test(v);
/** The longest timer Node keeps (a longer one fires at once). */
const MAX_TIMEOUT_MS = 2_147_483_647;

/** A route's success with an OTP in its body (a 2xx with another shape is not the gateway's answer). */
const otpAnswer = (want: number) => (status: number, b: Readonly<Record<string, unknown>>) =>
  status === want && isOtpId(b.id) && typeof b.status === 'string';
const isSent = otpAnswer(202);
const isView = otpAnswer(200);

/** The HTTP statuses under which the gateway refuses a code it checked (or could not find). */
const REFUSAL_STATUSES = new Set([404, 409, 410, 422, 423, 429]);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Creates a client of the gateway at `baseUrl` under one API key. Holds no connection or timer: make one at
 * start-up and share it. Never logs. Throws a `TypeError` for an invalid `baseUrl`, an `apiKey` that is empty or
 * not printable ASCII without spaces (as a secret file's trailing newline would make it), or a bad `timeoutMs`
 * (above 2^31 - 1 ms, Node's longest timer, included).
 *
 * ```ts
 * const otp = createOtpClient({ baseUrl: 'https://otp.internal', apiKey: process.env.OTP_API_KEY! });
 * const { id } = await otp.send('+33612345678', { locale: 'fr' });
 * const result = await otp.verify({ id }, typedCode);
 * // another try only while the OTP takes one: the last wrong code locks it (status 'locked', 0 left)
 * if (!result.ok) return { retry: result.status === 'pending' && (result.attemptsRemaining ?? 0) > 0 };
 * ```
 */
export function createOtpClient(options: OtpClientOptions): OtpClient {
  const base = normalizeBaseUrl(options.baseUrl);
  // (the messages never quote the key: it is a secret)
  if (typeof options.apiKey !== 'string' || options.apiKey.trim() === '') {
    throw new TypeError('createOtpClient: apiKey must be a non-empty string');
  }
  if (!HEADER_SAFE.test(options.apiKey)) {
    throw new TypeError('createOtpClient: apiKey must be printable ASCII without spaces or line breaks');
  }
  const timeoutMs = options.timeoutMs ?? 5000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) {
    throw new TypeError(`createOtpClient: timeoutMs must be a positive number of ms, at most ${MAX_TIMEOUT_MS}`);
  }
  const fetchFn: FetchLike = options.fetch ?? ((url, init) => globalThis.fetch(url, init));
  if (!options.fetch && typeof globalThis.fetch !== 'function') {
    throw new TypeError('createOtpClient: no global fetch in this runtime; pass options.fetch');
  }
  const authorization = `Bearer ${options.apiKey}`;

  const call = (
    method: 'GET' | 'POST',
    path: string,
    what: string,
    opts: { body?: unknown; headers?: Record<string, string>; auth?: boolean } = {},
  ): Promise<Answer> => {
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
    if (opts.auth !== false) headers['authorization'] = authorization;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    return exchange(
      fetchFn,
      base + path,
      body === undefined ? { method, headers } : { method, headers, body },
      timeoutMs,
      what,
    );
  };

  return Object.freeze({
    async send(phoneNumber, sendOptions = {}) {
      const what = 'POST /v1/otp/send';
      const body = {
        phoneNumber,
        ...(sendOptions.locale === undefined ? {} : { locale: sendOptions.locale }),
        ...(sendOptions.metadata === undefined ? {} : { metadata: sendOptions.metadata }),
      };
      const given = sendOptions.idempotencyKey;
      if (given !== undefined && (typeof given !== 'string' || given.length > 128 || !HEADER_SAFE.test(given))) {
        throw new TypeError('send: idempotencyKey must be 1 to 128 printable ASCII characters without spaces');
      }
      // One key for both tries: if the first reached the gateway, the retry gets its answer and sends nothing new.
      const headers = { 'idempotency-key': given ?? randomKey() };
      for (let attempt = 1; ; attempt++) {
        let answer: Answer | undefined;
        let failure: OtpGatewayError | undefined;
        try {
          answer = await call('POST', '/v1/otp/send', what, { body, headers });
        } catch (e) {
          if (!isOtpGatewayError(e)) throw e;
          failure = e;
        }
        const transient = answer
          ? answer.status === 503
          : failure?.code === 'network_error' || failure?.code === 'timeout';
        if (attempt > 1 || !transient) {
          if (failure) throw failure;
          return successBody<SendResult>(answer!, what, isSent);
        }
        const asked = answer?.retryAfterSeconds;
        await sleep(asked === undefined ? RETRY_DELAY_MS : Math.min(asked * 1000, MAX_RETRY_DELAY_MS));
      }
    },

    async verify(target, code) {
      const what = 'POST /v1/otp/verify';
      let body: Record<string, string>;
      if (typeof target?.id === 'string') body = { id: target.id, code };
      else if (typeof target?.phoneNumber === 'string') body = { phoneNumber: target.phoneNumber, code };
      else throw new TypeError('verify: give { id } or { phoneNumber }');
      const answer = await call('POST', '/v1/otp/verify', what, { body });
      if (answer.status >= 200 && answer.status < 300) {
        // approved only when the gateway says so, for the OTP asked about
        const ok = successBody<{ id: string }>(
          answer,
          what,
          (status, b) => isView(status, b) && b.status === 'approved' && (body.id === undefined || b.id === body.id),
        );
        return { ok: true, id: ok.id, status: 'approved' } satisfies VerifyResult;
      }
      const refusal = refusalOf(answer);
      if (refusal) return refusal;
      throw errorOf(answer, what);
    },

    async get(id) {
      const what = 'GET /v1/otp/{id}';
      // not an id the gateway makes: no such OTP (and `..` or `status` never reach another route)
      if (!isOtpId(id)) {
        throw new OtpGatewayError({ status: 404, code: 'otp_not_found', message: `${what}: no OTP has this id` });
      }
      return successBody<OtpView>(await call('GET', `/v1/otp/${id}`, what), what, isView);
    },

    async status(phoneNumber) {
      const what = 'GET /v1/otp/status';
      const path = `/v1/otp/status?phoneNumber=${encodeURIComponent(phoneNumber)}`;
      return successBody<OtpView>(await call('GET', path, what), what, isView);
    },

    async health() {
      const what = 'GET /readyz';
      // Unauthenticated on the gateway: the key is not sent where it is not needed.
      successBody<unknown>(
        await call('GET', '/readyz', what, { auth: false }),
        what,
        (status, b) => status === 200 && b.status === 'ready',
      );
      return { status: 'ready' } satisfies HealthResult;
    },
  } satisfies OtpClient);
}

/** A verify answer the gateway documents as a refusal of the code, or undefined for any other failure. */
function refusalOf(answer: Answer): VerifyRefused | undefined {
  const e = apiError(answer.body);
  if (!e || !REFUSAL_STATUSES.has(answer.status)) return undefined;
  // A 404 other than otp_not_found is a wrong route (a misconfigured baseUrl), not an unknown OTP.
  if (answer.status === 404 && e.error.code !== 'otp_not_found') return undefined;
  return {
    ok: false,
    code: e.error.code,
    message: e.error.message,
    ...(typeof e.id === 'string' ? { id: e.id } : {}),
    ...(typeof e.status === 'string' ? { status: e.status as OtpStatus } : {}),
    ...(typeof e.attemptsRemaining === 'number' ? { attemptsRemaining: e.attemptsRemaining } : {}),
    ...(answer.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: answer.retryAfterSeconds }),
  };
}

function normalizeBaseUrl(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError('createOtpClient: baseUrl must be an absolute http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError('createOtpClient: baseUrl must be an absolute http(s) URL');
  }
  if (url.username || url.password) throw new TypeError('createOtpClient: baseUrl must not hold credentials');
  if (url.search || url.hash) throw new TypeError('createOtpClient: baseUrl must not have a query or a fragment');
  return url.href.replace(/\/+$/, '');
}

function randomKey(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID !== 'function') {
    throw new TypeError('send: this runtime has no crypto.randomUUID; pass options.idempotencyKey');
  }
  return c.randomUUID();
}
