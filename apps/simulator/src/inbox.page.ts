import type { FastifyInstance } from 'fastify';
import { type InboxMessage, normalizePhone } from './inbox.js';
import type { SimContext } from './sim.context.js';

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

const STYLE = `body{font:15px system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}
a{color:#0b5cad}table{border-collapse:collapse;width:100%}td,th{padding:.4rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.body{font-family:ui-monospace,monospace;white-space:pre-wrap}.muted{color:#777}.bad{color:#b00020}`;

function page(title: string, content: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>${esc(title)}</title><style>${STYLE}</style></head><body><h1>${esc(title)}</h1>${content}
<p class="muted">Refreshes every 2 s. JSON: <a href="/_sim/inbox.json">/_sim/inbox.json</a></p></body></html>`;
}

const BAD = /undelivered|failed|NOT_DELIVERED|BAD_DESTINATION|BLACKLISTED/;

function messageRows(messages: InboxMessage[], withPhone: boolean): string {
  if (messages.length === 0) return '<p class="muted">No messages yet.</p>';
  const rows = [...messages]
    .reverse()
    .map(
      (m) => `<tr><td class="muted">${esc(m.createdAt.replace('T', ' ').slice(0, 19))}</td>
${withPhone ? `<td><a href="/inbox/${encodeURIComponent(m.to)}">${esc(m.to)}</a></td>` : ''}<td>${esc(m.provider)}</td>
<td class="body">${esc(m.body)}</td><td class="${BAD.test(m.status) ? 'bad' : ''}">${esc(m.status)}${m.errorCode ? ` (${esc(m.errorCode)})` : ''}</td>
<td class="muted">${esc(m.messageId)}</td></tr>`,
    )
    .join('');
  return `<table><tr><th>time (UTC)</th>${withPhone ? '<th>to</th>' : ''}<th>provider</th><th>text</th><th>status</th><th>id</th></tr>${rows}</table>`;
}

/** `GET /inbox`: the numbers that received messages; `GET /inbox/{phone}`: one number's messages, newest first. */
export function registerInboxPage(app: FastifyInstance, ctx: SimContext): void {
  app.get('/inbox', async (_req, reply) => {
    const phones = ctx.inbox.phones();
    const list =
      phones.length === 0
        ? '<p class="muted">No messages yet.</p>'
        : `<ul>${phones.map((p) => `<li><a href="/inbox/${encodeURIComponent(p.phone)}">${esc(p.phone)}</a> <span class="muted">${p.count} message${p.count === 1 ? '' : 's'}</span></li>`).join('')}</ul>`;
    const latest = messageRows(ctx.inbox.list().slice(-20), true);
    return reply.type('text/html; charset=utf-8').send(page('Simulator inbox', `${list}<h2>Latest</h2>${latest}`));
  });

  app.get<{ Params: { phone: string } }>('/inbox/:phone', async (req, reply) => {
    const phone = normalizePhone(req.params.phone);
    const content = `<p><a href="/inbox">All numbers</a></p>${messageRows(ctx.inbox.list({ phone }), false)}`;
    return reply.type('text/html; charset=utf-8').send(page(`Inbox of ${phone}`, content));
  });
}
