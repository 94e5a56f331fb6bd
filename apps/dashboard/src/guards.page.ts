import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { GuardBlock, SendGuards } from '@otp-gateway/store';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/** Where the page lives, beside the board (behind the same basic auth). */
export const GUARDS_PATH = '/admin/guards';

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

/**
 * A lift is a POST an operator's browser sends with its basic-auth credentials, which a browser also attaches
 * to a forged cross-site form: the form carries a token only this page shows (a random value per process: a
 * cross-site page cannot read ours), and a request whose Origin or Sec-Fetch-Site says another site is refused.
 */
function crossSite(req: FastifyRequest): boolean {
  // Sec-Fetch-Site when the browser sends it (all current ones): the Origin of a form POST reads "null" under
  // this dashboard's Referrer-Policy: no-referrer, so it cannot tell there
  const site = req.headers['sec-fetch-site'];
  if (site) return site !== 'same-origin' && site !== 'none';
  const origin = req.headers.origin;
  // none, or "null" (our own form under no-referrer, in a browser without Sec-Fetch-Site): the token decides
  if (!origin || origin === 'null') return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

function page(blocks: readonly GuardBlock[], token: string, note: string): string {
  const rows = blocks
    .map(
      (b) => `<tr><td>${esc(b.guard)}</td><td>${esc(b.label)}</td><td>${esc(b.country)}</td><td>${esc(b.why)}</td>
<td>${esc(new Date(b.until).toISOString())}</td><td><form method="post" action="${GUARDS_PATH}/lift">
<input type="hidden" name="id" value="${esc(b.id)}"><input type="hidden" name="csrf" value="${token}">
<button type="submit">Lift</button></form></td></tr>`,
    )
    .join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Abuse guards</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em}</style>
</head><body><h1>Abuse guards: active blocks</h1><p><a href="/admin/queues">Queues</a></p>
${note ? `<p role="status">${esc(note)}</p>` : ''}
${
  blocks.length === 0
    ? '<p id="empty">No active block.</p>'
    : `<table><thead><tr><th>guard</th><th>subject</th><th>country</th><th>why</th><th>until (UTC)</th><th></th></tr></thead><tbody>
${rows}</tbody></table>`
}
</body></html>`;
}

/**
 * The guards page: active blocks (velocity blocks, low-conversion throttles, spent budgets) with their counters
 * and reason, and a Lift button each. Registered inside the dashboard's authenticated scope.
 */
export async function guardsPage(
  app: FastifyInstance,
  opts: { guards: SendGuards; onLift?: (id: string, lifted: boolean, req: FastifyRequest) => void },
): Promise<void> {
  const token = randomBytes(24).toString('base64url');
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(String(body))));
  });
  app.get(GUARDS_PATH, async (req, reply) => {
    const note = (req.query as { lifted?: string }).lifted === '1' ? 'Block lifted.' : '';
    return reply.type('text/html; charset=utf-8').send(page(await opts.guards.blocks(), token, note));
  });
  app.post(GUARDS_PATH + '/lift', async (req, reply) => {
    const body = (req.body ?? {}) as { id?: unknown; csrf?: unknown };
    const given = Buffer.from(typeof body.csrf === 'string' ? body.csrf : '');
    const expected = Buffer.from(token);
    if (crossSite(req) || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return reply.code(403).send({ error: { code: 'forbidden', message: 'cross-site or tokenless request refused' } });
    }
    if (typeof body.id !== 'string' || body.id.length > 300) {
      return reply.code(400).send({ error: { code: 'invalid_request', message: 'id of a block required' } });
    }
    const lifted = await opts.guards.lift(body.id);
    opts.onLift?.(body.id, lifted, req);
    return reply.redirect(`${GUARDS_PATH}?lifted=${lifted ? 1 : 0}`, 303);
  });
}
