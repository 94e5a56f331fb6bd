import type { SimProvider } from './sim.options.js';

/** One message as the fake phone network saw it. The inbox is the simulated handset: it shows the body. */
export interface InboxMessage {
  /** The vendor's message id: Twilio `SM...` sid, Octopush `sms_ticket`. */
  readonly messageId: string;
  readonly provider: SimProvider;
  readonly to: string;
  readonly from: string | null;
  readonly body: string;
  /** The vendor's own status (`queued`, `sent`, `delivered`... or `DELIVERED`, `NOT_DELIVERED`...). */
  status: string;
  /** Vendor error code of a failed delivery (Twilio 30003...), or null. */
  errorCode: string | null;
  /** Octopush `request_id`, or null. */
  readonly requestId: string | null;
  readonly createdAt: string;
  updatedAt: string;
}

export interface InboxFilter {
  phone?: string | undefined;
  provider?: SimProvider | undefined;
}

/** Messages received, oldest first, bounded to `limit`. */
export interface Inbox {
  add(m: InboxMessage): void;
  /** Changes a message's status; returns it, or undefined when it is gone. */
  setStatus(
    provider: SimProvider,
    id: string,
    to: string,
    status: string,
    errorCode?: string | null,
  ): InboxMessage | undefined;
  find(provider: SimProvider, id: string): InboxMessage | undefined;
  list(filter?: InboxFilter): InboxMessage[];
  /** Numbers that received something, with their message count, newest activity first. */
  phones(): { phone: string; count: number; lastAt: string }[];
  clear(): void;
}

/** Reads a phone number from a query string, where `+` arrives as a space. */
export function normalizePhone(raw: string): string {
  const digits = raw.trim().replace(/[\s().-]/g, '');
  return digits.startsWith('+') ? digits : `+${digits.replace(/^00/, '')}`;
}

/** Masks a number for logs: +33612345678 -> +336*****678. */
export function mask(phone: string): string {
  return phone.length <= 7
    ? '*'.repeat(phone.length)
    : phone.slice(0, 4) + '*'.repeat(phone.length - 7) + phone.slice(-3);
}

export function createInbox(limit: number): Inbox {
  let messages: InboxMessage[] = [];
  const key = (provider: SimProvider, id: string, to: string) => `${provider}:${id}:${to}`;
  let byKey = new Map<string, InboxMessage>();
  /** By provider and message id (an Octopush ticket covers several numbers: its first message). */
  let byId = new Map<string, InboxMessage>();

  return {
    add(m) {
      messages.push(m);
      byKey.set(key(m.provider, m.messageId, m.to), m);
      const id = `${m.provider}:${m.messageId}`;
      if (!byId.has(id)) byId.set(id, m);
      while (messages.length > limit) {
        const old = messages.shift();
        if (!old) break;
        byKey.delete(key(old.provider, old.messageId, old.to));
        if (byId.get(`${old.provider}:${old.messageId}`) === old) byId.delete(`${old.provider}:${old.messageId}`);
      }
    },
    setStatus(provider, id, to, status, errorCode = null) {
      const m = byKey.get(key(provider, id, to));
      if (!m) return undefined;
      m.status = status;
      m.errorCode = errorCode;
      m.updatedAt = new Date().toISOString();
      return m;
    },
    find: (provider, id) => byId.get(`${provider}:${id}`),
    list(filter = {}) {
      const phone = filter.phone ? normalizePhone(filter.phone) : undefined;
      return messages.filter((m) => (!phone || m.to === phone) && (!filter.provider || m.provider === filter.provider));
    },
    phones() {
      const seen = new Map<string, { phone: string; count: number; lastAt: string }>();
      for (const m of messages) {
        const e = seen.get(m.to) ?? { phone: m.to, count: 0, lastAt: m.createdAt };
        e.count += 1;
        e.lastAt = m.createdAt;
        seen.set(m.to, e);
      }
      return [...seen.values()].sort((a, b) => b.lastAt.localeCompare(a.lastAt));
    },
    clear() {
      messages = [];
      byKey = new Map();
      byId = new Map();
    },
  };
}
