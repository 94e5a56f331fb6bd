import http from 'node:http';
import https from 'node:https';
import type { FastifyBaseLogger } from 'fastify';

/** Answer of one delivery report POST, for logs. */
export interface CallbackResult {
  readonly ok: boolean;
  readonly status: number | null;
}

/** How long a delivery report may take, queueing for a connection included, before it is dropped (vendors do not retry). */
const CALLBACK_TIMEOUT_MS = 5000;
/** A kept-alive connection idle this long is closed: under what receivers and proxies commonly allow (undici's 4 s). */
const IDLE_MS = 4000;

/** Sends the delivery reports; `close()` (the app's) ends those in flight and the kept-alive connections. */
export interface CallbackClient {
  /** POSTs a delivery report; never rejects (a receiver that is down is the receiver's problem). */
  post(
    url: string,
    body: { form: Record<string, string> } | { json: unknown },
    headers: Record<string, string>,
    log: FastifyBaseLogger,
  ): Promise<CallbackResult>;
  close(): void;
}

/**
 * Delivery reports over node's http(s) with kept-alive connections, as a vendor's report senders keep them. Not
 * `fetch`: at hundreds of reports a second, `fetch` (undici, and a timeout signal combined with the closing one per
 * request) cost the simulator about twice the CPU, and the simulator shares its machine with the gateway in
 * benchmarks and in a one-machine set-up.
 */
export function createCallbackClient(): CallbackClient {
  const agents = {
    http: new http.Agent({ keepAlive: true, maxSockets: 64, timeout: IDLE_MS }),
    https: new https.Agent({ keepAlive: true, maxSockets: 64, timeout: IDLE_MS }),
  };
  const inFlight = new Set<http.ClientRequest>();
  let closed = false;

  const post: CallbackClient['post'] = (url, body, headers, log) => {
    const isForm = 'form' in body;
    const payload = isForm ? new URLSearchParams(body.form).toString() : JSON.stringify(body.json);
    return new Promise((resolve) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const settle = (result: CallbackResult, err?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) log.warn({ url: redact(url), err }, 'delivery report failed');
        else log[result.ok ? 'debug' : 'warn']({ url: redact(url), status: result.status }, 'delivery report answered');
        resolve(result);
      };
      if (closed) return settle({ ok: false, status: null }, 'simulator closing');
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        return settle({ ok: false, status: null }, 'invalid URL');
      }
      const secure = target.protocol === 'https:';
      const req = (secure ? https : http).request(
        target,
        {
          method: 'POST',
          agent: secure ? agents.https : agents.http,
          headers: {
            'content-type': isForm ? 'application/x-www-form-urlencoded' : 'application/json',
            'content-length': Buffer.byteLength(payload),
            ...headers,
          },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          res.resume();
          // 'close' comes after 'end', and also when the answer is cut off (no 'end' then)
          res.on('close', () =>
            res.complete
              ? settle({ ok: status >= 200 && status < 300, status })
              : settle({ ok: false, status }, 'answer cut off'),
          );
        },
      );
      inFlight.add(req);
      req.on('close', () => inFlight.delete(req));
      req.on('error', (err) => settle({ ok: false, status: null }, err.message));
      timer = setTimeout(
        () => req.destroy(new Error(`no answer within ${CALLBACK_TIMEOUT_MS} ms`)),
        CALLBACK_TIMEOUT_MS,
      );
      req.end(payload);
    });
  };

  return {
    post,
    close() {
      closed = true;
      for (const req of inFlight) req.destroy(new Error('simulator closing'));
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/** Hides the secret path segment of an Octopush callback URL in logs. */
function redact(url: string): string {
  return url.replace(/(\/delivery\/)[^/?#]+/, '$1***');
}
