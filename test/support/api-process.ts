import { type AppProcess, LOAD_TEST_GUARDS, startApp, waitForHttp } from './processes.js';
import { freePort } from './redis-server.js';

export interface HttpAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly text: string;
  readonly headers: Headers;
  /** Milliseconds from sending the request to reading the whole answer. */
  readonly ms: number;
}

/** The built API (apps/api/dist/main.js) running as its own process, and a small HTTP client for it. */
export interface ApiProcess {
  readonly proc: AppProcess;
  readonly base: string;
  request(
    method: 'GET' | 'POST',
    path: string,
    opts?: { key?: string | null; body?: unknown; headers?: Record<string, string>; timeoutMs?: number },
  ): Promise<HttpAnswer>;
  stop(): Promise<void>;
}

/**
 * Starts the API with `env` and waits for /healthz. `defaultKey` is sent as Bearer unless a call says otherwise.
 * `waitReady: false` skips waiting (for an API started while Redis is down).
 */
export async function startApiProcess(
  env: Record<string, string>,
  defaultKey: string,
  opts: { waitReady?: boolean } = {},
): Promise<ApiProcess> {
  const port = await freePort();
  const proc = startApp('api', { HOST: '127.0.0.1', API_PORT: String(port), ...LOAD_TEST_GUARDS, ...env });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${base}/healthz`);
    if (opts.waitReady !== false) await waitForHttp(`${base}/readyz`);
  } catch (e) {
    await proc.stop('SIGKILL');
    throw new Error(`${String(e)}\n${proc.output().slice(-3000)}`);
  }
  return {
    proc,
    base,
    async request(method, path, o = {}) {
      const headers: Record<string, string> = { ...o.headers };
      const key = o.key === undefined ? defaultKey : o.key;
      if (key !== null) headers['authorization'] = `Bearer ${key}`;
      if (o.body !== undefined) headers['content-type'] = 'application/json';
      const started = performance.now();
      const res = await fetch(base + path, {
        method,
        headers,
        body: o.body === undefined ? undefined : JSON.stringify(o.body),
        signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
      });
      const text = await res.text();
      const ms = performance.now() - started;
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(text);
      } catch {}
      return { status: res.status, body, text, headers: res.headers, ms };
    },
    async stop() {
      await proc.stop();
    },
  };
}
