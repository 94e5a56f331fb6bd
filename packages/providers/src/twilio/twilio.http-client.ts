import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/** What the twilio library hands its `httpClient` (the fields of its RequestClient.request it uses for a send). */
export interface TwilioHttpRequest {
  method: string;
  uri: string;
  username?: string;
  password?: string;
  headers?: Record<string, string>;
  params?: Record<string, unknown>;
  data?: Record<string, unknown>;
  timeout?: number;
}

/** What the library expects back: it parses a string body itself and raises RestException on 4xx/5xx. */
export interface TwilioHttpResponse {
  statusCode: number;
  body: string;
  headers: IncomingHttpHeaders;
}

/** The current send, as the provider hands it to the HTTP client: its signal, and a place for the answer. */
export interface TwilioCallScope {
  readonly signal: AbortSignal;
  response?: { statusCode: number; headers?: Record<string, unknown> };
}

/**
 * Hands the current send to the HTTP client. twilio 6 calls its `httpClient.request` synchronously within
 * `messages.create()` and `fetch()` (Version.create → Domain.request → BaseTwilio.request, no await between), so
 * `run` sets the send, makes the library call, and clears it; `request` takes it on the way.
 *
 * Why not AsyncLocalStorage, which carried it before: its first `run` turns on node's promise hooks for the whole
 * process (node 20 and 22), and from then on every promise the worker makes (BullMQ's, ioredis's, its own) paid
 * for them. Without it the worker spent about 7 % less CPU per job over HTTP (issue 12, worker-drain (b')).
 * Should a later library version call its client after an await, `request` finds nothing to take: the call then
 * has no send signal, only the socket's idle timeout, and the provider tests that abort a send fail.
 */
export function callHandoff() {
  let pending: TwilioCallScope | undefined;
  return {
    run<R>(scope: TwilioCallScope, call: () => R): R {
      pending = scope;
      try {
        return call();
      } finally {
        pending = undefined;
      }
    },
    take(): TwilioCallScope | undefined {
      const s = pending;
      pending = undefined;
      return s;
    },
  };
}

/**
 * The twilio library's `httpClient`, on node's http(s) with keep-alive agents instead of the library's axios
 * `RequestClient`.
 *
 * Why our own: in the worker-drain benchmark, the library's client (axios, its interceptors and config merging,
 * qs) took a fifth of the worker's CPU per send; this one does what a send needs (form-encode, basic auth, one
 * request on a pooled connection) and nothing else. The library still builds the request and parses the answer
 * (RestException and all), so the wire format stays the library's. Not used when HTTP(S)_PROXY is set: the
 * library's client knows proxies.
 *
 * `scope()` gives the current send, once (callHandoff): the signal to abort with, and where its response's status
 * and headers are recorded, since a RestException drops the headers and Retry-After lives in them.
 */
export function createTwilioHttpClient(opts: { timeoutMs: number; scope: () => TwilioCallScope | undefined }) {
  const agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };
  const targets = originCache();
  return {
    request(req: TwilioHttpRequest): Promise<TwilioHttpResponse> {
      let target: ReturnType<typeof targets.split>;
      try {
        target = targets.split(req.uri);
      } catch (e) {
        return Promise.reject(e);
      }
      const { origin, path: basePath } = target;
      let path = basePath;
      if (req.params) {
        const query = new URLSearchParams(formPairs(req.params)).toString();
        if (query) path += `${path.includes('?') ? '&' : '?'}${query}`;
      }
      const headers: Record<string, string> = { ...(req.headers ?? {}) };
      if (req.username && req.password) {
        headers.Authorization = `Basic ${Buffer.from(`${req.username}:${req.password}`).toString('base64')}`;
      }
      let body: string | undefined;
      if (req.data && headers['Content-Type'] === 'application/x-www-form-urlencoded') {
        body = new URLSearchParams(formPairs(req.data)).toString();
      } else if (req.data && headers['Content-Type'] === 'application/json') body = JSON.stringify(req.data);
      if (body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(body));
      const current = opts.scope();
      const signal = current?.signal;
      return new Promise((resolve, reject) => {
        if (signal?.aborted) {
          reject(abortError(signal));
          return;
        }
        // One listener on the send's signal, dropped as the request settles. Node's own `signal` option does the
        // same through its stream utilities at some 20 µs a request (a sixth of a send's CPU in the provider).
        const onAbort = () => r.destroy(signal ? abortError(signal) : undefined);
        const settle =
          <T>(f: (v: T) => void) =>
          (v: T) => {
            signal?.removeEventListener('abort', onAbort);
            f(v);
          };
        const ok = settle(resolve);
        const fail = settle(reject);
        const r = (origin.https ? httpsRequest : httpRequest)(
          {
            protocol: origin.https ? 'https:' : 'http:',
            hostname: origin.hostname,
            port: origin.port,
            path,
            method: req.method.toUpperCase(),
            headers,
            agent: origin.https ? agents.https : agents.http,
            timeout: req.timeout ?? opts.timeoutMs,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('error', fail);
            res.on('end', () => {
              const statusCode = res.statusCode ?? 0;
              if (current) current.response = { statusCode, headers: res.headers as Record<string, unknown> };
              ok({ statusCode, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers });
            });
          },
        );
        r.on('timeout', () => r.destroy(Object.assign(new Error('twilio request timed out'), { code: 'ETIMEDOUT' })));
        r.on('error', fail);
        signal?.addEventListener('abort', onAbort, { once: true });
        r.end(body);
      });
    },
  };
}

/** What a request ends with when its send's signal aborts (the provider classifies it from the signals). */
function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('twilio request aborted'), {
    name: 'AbortError',
    code: 'ABORT_ERR',
    cause: signal.reason,
  });
}

/**
 * Splits a request URI into its origin (parsed once per origin: one, the API base URL, in practice) and its path.
 * A `new URL` per request cost some 9 µs.
 */
function originCache() {
  const known = new Map<string, { https: boolean; hostname: string; port: string }>();
  return {
    split(uri: string) {
      const slash = uri.indexOf('/', uri.indexOf('//') + 2);
      const key = slash < 0 ? uri : uri.slice(0, slash);
      let origin = known.get(key);
      if (!origin) {
        const u = new URL(key);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') {
          throw new Error(`twilio request to ${u.protocol} (only http: and https: are spoken)`);
        }
        // a bracketed IPv6 host is given to node without its brackets
        const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
        origin = { https: u.protocol === 'https:', hostname, port: u.port };
        if (known.size >= 16) known.clear();
        known.set(key, origin);
      }
      return { origin, path: slash < 0 ? '/' : uri.slice(slash) };
    },
  };
}

/** Form pairs as the library's client writes them (qs, arrayFormat repeat): `a=1&a=2` for an array. */
function formPairs(data: Record<string, unknown>): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(data)) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) for (const x of v) out.push([k, String(x)]);
    else out.push([k, String(v)]);
  }
  return out;
}
