import type { FastifyBaseLogger } from 'fastify';

/** Answer of one delivery report POST, for logs. */
export interface CallbackResult {
  readonly ok: boolean;
  readonly status: number | null;
}

/** How long a delivery report may take before the simulator gives up on it (vendors do not retry). */
const CALLBACK_TIMEOUT_MS = 5000;

/** POSTs a delivery report; never throws (a receiver that is down is the receiver's problem). */
export async function postCallback(
  url: string,
  body: { form: Record<string, string> } | { json: unknown },
  headers: Record<string, string>,
  log: FastifyBaseLogger,
  closing: AbortSignal,
): Promise<CallbackResult> {
  const isForm = 'form' in body;
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': isForm ? 'application/x-www-form-urlencoded' : 'application/json',
        ...headers,
      },
      body: isForm ? new URLSearchParams(body.form).toString() : JSON.stringify(body.json),
      signal: AbortSignal.any([AbortSignal.timeout(CALLBACK_TIMEOUT_MS), closing]),
    });
    await res.arrayBuffer().catch(() => undefined);
    const result = { ok: res.ok, status: res.status };
    log[res.ok ? 'debug' : 'warn']({ url: redact(url), status: res.status }, 'delivery report answered');
    return result;
  } catch (err) {
    log.warn({ url: redact(url), err: (err as Error).message }, 'delivery report failed');
    return { ok: false, status: null };
  }
}

/** Hides the secret path segment of an Octopush callback URL in logs. */
function redact(url: string): string {
  return url.replace(/(\/delivery\/)[^/?#]+/, '$1***');
}
