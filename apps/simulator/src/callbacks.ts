import http from 'node:http';
import https from 'node:https';
import type { FastifyBaseLogger } from 'fastify';

/** Answer of one delivery report POST, for logs. */
export interface CallbackResult {
  readonly ok: boolean;
  readonly status: number | null;
}

/** How long a delivery report may take before the simulator gives up on it (vendors do not retry). */
const CALLBACK_TIMEOUT_MS = 5000;

/**
 * Kept-alive connections to the receivers, as a vendor's report senders keep them. Node's `http` rather than
 * `fetch`: at hundreds of reports a second, `fetch` (undici, a timeout signal combined with the closing one per
 * request) cost the simulator about twice the CPU, and the simulator shares its machine with the gateway in
 * benchmarks and in a one-machine set-up.
 */
const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 64 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 64 }),
};

/** POSTs a delivery report; never throws (a receiver that is down is the receiver's problem). */
export function postCallback(
  url: string,
  body: { form: Record<string, string> } | { json: unknown },
  headers: Record<string, string>,
  log: FastifyBaseLogger,
  closing: AbortSignal,
): Promise<CallbackResult> {
  const isForm = 'form' in body;
  const payload = isForm ? new URLSearchParams(body.form).toString() : JSON.stringify(body.json);
  const done = (result: CallbackResult, err?: string): CallbackResult => {
    if (err) log.warn({ url: redact(url), err }, 'delivery report failed');
    else log[result.ok ? 'debug' : 'warn']({ url: redact(url), status: result.status }, 'delivery report answered');
    return result;
  };
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      resolve(done({ ok: false, status: null }, 'invalid URL'));
      return;
    }
    const client = target.protocol === 'https:' ? https : http;
    const agent = target.protocol === 'https:' ? agents['https:'] : agents['http:'];
    const req = client.request(
      target,
      {
        method: 'POST',
        agent,
        signal: closing,
        timeout: CALLBACK_TIMEOUT_MS,
        headers: {
          'content-type': isForm ? 'application/x-www-form-urlencoded' : 'application/json',
          'content-length': Buffer.byteLength(payload),
          ...headers,
        },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        res.on('error', () => {});
        res.on('end', () => resolve(done({ ok: status >= 200 && status < 300, status })));
        res.resume();
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${CALLBACK_TIMEOUT_MS} ms`)));
    req.on('error', (err) => resolve(done({ ok: false, status: null }, err.message)));
    req.end(payload);
  });
}

/** Hides the secret path segment of an Octopush callback URL in logs. */
function redact(url: string): string {
  return url.replace(/(\/delivery\/)[^/?#]+/, '$1***');
}
