import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { isPrivateAddress, signWebhook } from '@otp-gateway/core';

/** Where one API key's status events go: the endpoint and the `whsec_` secrets that sign them (each one signs). */
export interface WebhookTarget {
  readonly url: string;
  readonly secrets: readonly string[];
}

/** One try's outcome: the receiver took it (2xx), asked us to stop (410), or it failed (retried later). */
export type WebhookPostOutcome =
  | { kind: 'delivered'; status: number }
  | { kind: 'gone' }
  | { kind: 'refused'; reason: string }
  | { kind: 'failed'; status: number | null; reason: string };

export interface WebhookPostOptions {
  readonly timeoutMs: number;
  readonly allowPrivateNetworks: boolean;
  /** The DNS lookup (tests pass a fake resolver). */
  readonly resolve?: typeof dnsLookup;
  /** Seconds since the epoch, for `webhook-timestamp` (tests). */
  readonly nowSeconds?: () => number;
}

class PrivateAddressError extends Error {
  override readonly name = 'PrivateAddressError';
}

/**
 * A lookup that refuses loopback and private addresses: the address the socket connects to is the one checked,
 * at connect time, so a name that resolves to a public address when configured and to a private one later (DNS
 * rebinding) is refused too.
 */
function guardedLookup(resolve: typeof dnsLookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses as unknown as LookupAddress[];
      const bad = list.find((a) => isPrivateAddress(a.address));
      if (bad || list.length === 0) {
        return callback(new PrivateAddressError(`${hostname} resolves to a loopback or private address`), '', 0);
      }
      if ((options as { all?: boolean }).all) return (callback as (e: null, a: LookupAddress[]) => void)(null, list);
      const first = list[0]!;
      callback(null, first.address, first.family);
    });
  };
}

/**
 * Posts one status event, signed for this try (Standard Webhooks: the id is the event's, the timestamp this try's).
 * Never follows a redirect; reads at most a few KiB of the answer; gives up after `timeoutMs`.
 */
export async function postWebhook(
  target: WebhookTarget,
  message: { id: string; body: string },
  opts: WebhookPostOptions,
): Promise<WebhookPostOutcome> {
  let url: URL;
  try {
    url = new URL(target.url);
  } catch {
    return { kind: 'refused', reason: 'not a URL' };
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!opts.allowPrivateNetworks && isIP(host) && isPrivateAddress(host)) {
    return { kind: 'refused', reason: 'loopback or private address' };
  }
  const timestamp = Math.floor(opts.nowSeconds?.() ?? Date.now() / 1000);
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'otp-gateway-webhooks',
    'webhook-id': message.id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signWebhook(target.secrets, message.id, timestamp, message.body),
    'content-length': String(Buffer.byteLength(message.body)),
  };
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const lookup = opts.allowPrivateNetworks ? undefined : guardedLookup(opts.resolve ?? dnsLookup);
  return new Promise<WebhookPostOutcome>((resolvePost) => {
    let settled = false;
    const done = (o: WebhookPostOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolvePost(o);
    };
    const req = request(url, { method: 'POST', headers, ...(lookup ? { lookup } : {}), agent: false }, (res) => {
      // the status is the answer: its body is not read (an endpoint trickling one could hold the socket for hours,
      // past the timeout, which ends at the headers), and the connection is not reused (agent: false)
      res.on('error', () => {});
      res.destroy();
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) done({ kind: 'delivered', status });
      else if (status === 410) done({ kind: 'gone' });
      else done({ kind: 'failed', status, reason: `answered ${status}` });
    });
    const timer = setTimeout(() => {
      req.destroy(new Error('timeout'));
      done({ kind: 'failed', status: null, reason: `no answer within ${opts.timeoutMs} ms` });
    }, opts.timeoutMs);
    req.on('error', (err) => {
      if (err instanceof PrivateAddressError || err.name === 'PrivateAddressError') {
        done({ kind: 'refused', reason: err.message });
      } else done({ kind: 'failed', status: null, reason: (err as NodeJS.ErrnoException).code ?? err.message });
    });
    req.end(message.body);
  });
}
