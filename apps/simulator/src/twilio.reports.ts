import type { FastifyBaseLogger } from 'fastify';
import twilio from 'twilio';
import type { InboxMessage } from './inbox.js';
import type { SimContext } from './sim.context.js';

export const API_VERSION = '2010-04-01';

/** Undelivered endings drawn for a message whose delivery fails: Twilio status and ErrorCode. */
const UNDELIVERED: readonly [string, string][] = [
  ['undelivered', '30003'], // Unreachable destination handset
  ['undelivered', '30005'], // Unknown destination handset
  ['failed', '30008'], // Unknown error
];

/**
 * Moves the message to `sent`, then to its ending (none for `no_final_report`), POSTing each status to
 * StatusCallback, signed as Twilio signs. A `failed` message never left Twilio: it goes straight to `failed`.
 * Resolves once its last report was posted and answered (at once when none will be: the `reports_first` fault waits
 * on it).
 */
export function scheduleReports(
  ctx: SimContext,
  m: InboxMessage,
  o: {
    statusCallback: string | undefined;
    serviceSid: string | undefined;
    fate: 'delivered' | 'undelivered' | 'lost_callback' | 'no_final_report';
  },
  log: FastifyBaseLogger,
): Promise<void> {
  const delay = ctx.faults.get('twilio').callbackDelayMs;
  const [finalStatus, errorCode] =
    o.fate === 'undelivered'
      ? (UNDELIVERED[Math.floor(ctx.opts.random() * UNDELIVERED.length)] ?? ['undelivered', '30003'])
      : ['delivered', null];
  const report = async (status: string, code: string | null): Promise<void> => {
    if (!ctx.inbox.setStatus('twilio', m.messageId, m.to, status, code)) return;
    if (!o.statusCallback || o.fate === 'lost_callback') return;
    const params: Record<string, string> = {
      AccountSid: ctx.opts.twilio.accountSid,
      ApiVersion: API_VERSION,
      From: m.from ?? '+15005550006',
      MessageSid: m.messageId,
      MessageStatus: status,
      SmsSid: m.messageId,
      SmsStatus: status,
      To: m.to,
      ...(o.serviceSid ? { MessagingServiceSid: o.serviceSid } : {}),
      ...(code ? { ErrorCode: code } : {}),
    };
    const signature = twilio.getExpectedTwilioSignature(ctx.opts.twilio.authToken, o.statusCallback, params);
    await ctx.callbacks.post(o.statusCallback, { form: params }, { 'x-twilio-signature': signature }, log);
  };
  return new Promise<void>((done) => {
    ctx.timing.later(delay, () => {
      const end = () => done();
      if (finalStatus === 'failed') return void report(finalStatus, errorCode).then(end, end);
      const sent = report('sent', null);
      if (o.fate === 'no_final_report') return void sent.then(end, end);
      ctx.timing.later(delay, () => void Promise.all([sent, report(finalStatus, errorCode)]).then(end, end));
    });
  });
}
