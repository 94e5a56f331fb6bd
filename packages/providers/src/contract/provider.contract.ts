import {
  isProviderError,
  type Logger,
  type OutboundSms,
  type ProviderError,
  type ProviderId,
  type SmsProvider,
} from '@otp-gateway/core';
import { buildSimulator } from '@otp-gateway/simulator';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

/** What a provider under contract is built against. */
export interface ContractEnv {
  /** Origin of the running simulator, e.g. `http://127.0.0.1:41234`. */
  readonly simulatorUrl: string;
  /** Deadline of one send. */
  readonly timeoutMs: number;
  /** False: build the provider with credentials the simulator refuses. */
  readonly validCredentials: boolean;
}

export interface ContractOptions {
  /** The provider passes `attemptId` to the vendor as an idempotency key (a repeat sends nothing). */
  readonly idempotent: boolean;
}

type Simulator = Awaited<ReturnType<typeof buildSimulator>>;

/** A logger that keeps every line, to check what providers log. */
function recordingLogger(): Logger & { lines: unknown[] } {
  const lines: unknown[] = [];
  const rec = (obj: object, msg?: string) => void lines.push({ ...obj, msg });
  return { lines, info: rec, warn: rec, error: rec, debug: rec };
}

let seq = 0;
function sms(over: Partial<OutboundSms> = {}): OutboundSms {
  seq += 1;
  const code = String(100000 + ((seq * 7919) % 900000));
  return {
    otpId: `otp-contract-${seq}`,
    attemptId: `otp-contract-${seq}:1`,
    attempt: 1,
    to: '+33612345678',
    body: `Your verification code is ${code}. It expires in 10 minutes.`,
    expiresAt: Date.now() + 600_000,
    ...over,
  };
}

/** Runs `p` and returns the ProviderError it must throw. */
async function refusal(p: Promise<unknown>): Promise<ProviderError> {
  const outcome = await p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (outcome.ok) throw new Error(`expected a ProviderError, the send succeeded: ${JSON.stringify(outcome.v)}`);
  if (!isProviderError(outcome.e)) throw outcome.e;
  return outcome.e;
}

/**
 * The behaviour every SmsProvider owes the worker, checked over real HTTP against the simulator
 * (started here on a free 127.0.0.1 port): what lands in the inbox, and which ProviderError kind each
 * vendor failure becomes.
 */
export function describeProviderContract(
  name: ProviderId,
  makeProvider: (env: ContractEnv) => SmsProvider,
  options: ContractOptions,
): void {
  describe(`${name} provider contract (real HTTP against the simulator)`, () => {
    let sim: Simulator;
    let simulatorUrl = '';
    const make = (over: Partial<ContractEnv> = {}) =>
      makeProvider({ simulatorUrl, timeoutMs: 2000, validCredentials: true, ...over });
    const ctx = (signal = new AbortController().signal) => ({ signal, log: recordingLogger() });
    const faults = (patch: object) => sim.inject({ method: 'PUT', url: `/_sim/faults/${name}`, payload: patch });
    const inbox = async () =>
      (await sim.inject({ method: 'GET', url: `/_sim/inbox.json?provider=${name}` })).json() as {
        messageId: string;
        to: string;
        body: string;
      }[];

    beforeAll(async () => {
      sim = await buildSimulator();
      simulatorUrl = await sim.listen({ port: 0, host: '127.0.0.1' });
    });
    afterAll(() => sim.close());
    beforeEach(async () => {
      await sim.inject({ method: 'POST', url: '/_sim/reset' });
    });

    it('returns the message id of an accepted send, and the message reaches the phone as sent', async () => {
      const message = sms();
      const result = await make().send(message, ctx());
      expect(result.messageId).toEqual(expect.any(String));
      expect(await inbox()).toMatchObject([{ messageId: result.messageId, to: message.to, body: message.body }]);
    });

    it('never logs the message body (it holds the code)', async () => {
      const message = sms();
      const c = ctx();
      await make().send(message, c);
      await faults({ failNext: { count: 1, kind: 'server_error' } });
      await refusal(make().send(message, c));
      const logged = JSON.stringify(c.log.lines);
      // The provider logs its refusals (the worker logs acceptances, with the attempt): at least one line here.
      expect(c.log.lines.length).toBeGreaterThanOrEqual(1);
      expect(logged).not.toContain(message.body.match(/\d{6}/)?.[0]);
      expect(logged).not.toContain(message.to);
    });

    it('turns refused credentials into misconfigured', async () => {
      const e = await refusal(make({ validCredentials: false }).send(sms(), ctx()));
      expect(e.kind).toBe('misconfigured');
      expect(await inbox()).toEqual([]);
    });

    it('turns an invalid number into permanent', async () => {
      expect((await refusal(make().send(sms({ to: '+12' }), ctx()))).kind).toBe('permanent');
      await faults({ failNext: { count: 1, kind: 'invalid_number' } });
      expect((await refusal(make().send(sms(), ctx()))).kind).toBe('permanent');
      expect(await inbox()).toEqual([]);
    });

    it('turns a 429 into rate_limited with the Retry-After it was given', async () => {
      await faults({ retryAfterSeconds: 3, failNext: { count: 1, kind: 'rate_limit' } });
      const e = await refusal(make().send(sms(), ctx()));
      expect(e.kind).toBe('rate_limited');
      expect(e.retryAfterMs).toBe(3000);
    });

    it.each(['server_error', 'down', 'reset'])('turns %s into retryable', async (kind) => {
      await faults({ failNext: { count: 1, kind } });
      expect((await refusal(make().send(sms(), ctx()))).kind).toBe('retryable');
      expect(await inbox()).toEqual([]);
    });

    it('gives up after timeoutMs when the vendor is slower, as retryable', async () => {
      await faults({ latencyMs: 3000 });
      const t0 = Date.now();
      const e = await refusal(make({ timeoutMs: 300 }).send(sms(), ctx()));
      expect(e.kind).toBe('retryable');
      expect(e.code).toBe('TIMEOUT');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      expect(Date.now() - t0).toBeLessThan(1500);
    });

    it('gives up after timeoutMs when the vendor never answers', async () => {
      await faults({ failNext: { count: 1, kind: 'timeout' } });
      const t0 = Date.now();
      expect((await refusal(make({ timeoutMs: 300 }).send(sms(), ctx()))).kind).toBe('retryable');
      expect(Date.now() - t0).toBeLessThan(1500);
    });

    it('stops the call when its signal aborts, and sends nothing with an aborted signal', async () => {
      await faults({ latencyMs: 3000 });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const t0 = Date.now();
      const e = await refusal(make({ timeoutMs: 10_000 }).send(sms(), ctx(controller.signal)));
      expect(e).toMatchObject({ kind: 'retryable', code: 'ABORTED' });
      expect(Date.now() - t0).toBeLessThan(1000);

      await faults({ latencyMs: 0 });
      const pre = await refusal(make().send(sms(), ctx(AbortSignal.abort())));
      expect(pre.code).toBe('ABORTED');
      expect(await inbox()).toEqual([]);
    });

    // Only for vendors with an idempotency key (Twilio's Messages API has none).
    if (options.idempotent) {
      it('sends a repeated attempt only once', async () => {
        const message = sms();
        const first = await make().send(message, ctx());
        // the vendor refuses the repeat as already sent (Octopush's code 120): taken as accepted, under an id its
        // reports do not carry, and nothing more goes out
        const again = await make().send(message, ctx());
        expect(again).toMatchObject({ providerStatus: 'duplicate_request' });
        expect(again.messageId).not.toBe(first.messageId);
        expect(await inbox()).toHaveLength(1);
      });
    }
  });
}
