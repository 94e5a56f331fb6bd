import {
  CODE_LENGTHS,
  type Config,
  encodeMetadata,
  encryptCode,
  expectedPrice,
  fingerprint,
  GatewayError,
  generateCode,
  hashCode,
  metadataProblem,
  newOtpId,
  numberToken,
  type OtpKeys,
  type OtpView,
  parsePhone,
  type TestNumber,
} from '@otp-gateway/core';
import {
  enqueueSend,
  type IdempotencyStore,
  type OtpLabels,
  type OtpRepo,
  type OtpTarget,
  type RequestLimiter,
  type SendGuards,
  type SendQueues,
} from '@otp-gateway/store';
import type { Caller, FunnelEvent, OtpLookup, SendAnswer, SendRequest, VerifyRequest } from './otp.types.js';
import { endedError, guardError, notFound, refuse, store } from './refusals.js';

/** The OTP use cases, independent of HTTP. Refusals are GatewayErrors carrying the contract's codes. */
export interface OtpService {
  send(caller: Caller, req: SendRequest): Promise<SendAnswer>;
  verify(caller: Caller, req: VerifyRequest): Promise<{ id: string; status: 'approved' }>;
  get(caller: Caller, target: OtpLookup): Promise<OtpView>;
}

export interface OtpServiceDeps {
  readonly config: Config;
  readonly keys: OtpKeys;
  readonly repo: OtpRepo;
  readonly limiter: RequestLimiter;
  readonly idempotency: IdempotencyStore;
  readonly queues: SendQueues;
  /** The abuse guards (velocity, conversion watch, daily budgets); absent: none. */
  readonly guards?: SendGuards;
  /**
   * Resolves true once what this request wrote is on the replicas the configuration asks for (Sentinel); false:
   * the send is answered 503, since a failover could lose it (createReplicaWait). Absent: nothing to wait for.
   */
  readonly durable?: (otpId: string) => Promise<boolean>;
  /** Tests that move time: the clock the store's scripts use instead of Redis's. */
  readonly now?: () => number;
  /**
   * Called when an OTP was stored but its job could not be added. The OTP is accepted all the same: the
   * workers' sweep queues its job within seconds.
   */
  readonly onEnqueueFailed?: (otpId: string, err: unknown) => void;
  /**
   * Whether OTPs of an API key get status events (a webhook endpoint is configured for it); absent: never.
   * The events themselves are listed by the store's scripts and published by the repositories.
   */
  readonly wantsEvents?: (keyName: string) => boolean;
  /** Settings of one API key (TENANTS_FILE) over the gateway-wide ones; absent: the gateway-wide ones. */
  readonly keySettings?: (keyName: string) => Partial<KeyOtpSettings>;
  /** A test number of an API key (TENANTS_FILE), when test numbers are on: never sent to a provider. */
  readonly testNumber?: (keyName: string, e164: string) => TestNumber | null;
  /** Funnel events for metrics: requested, approved, expired, locked, wrong_code. */
  readonly onFunnel?: (event: FunnelEvent) => void;
}

/** The OTP settings that may differ per API key. */
export interface KeyOtpSettings {
  readonly ttlSeconds: number;
  readonly codeLength: number;
  readonly allowedCountries: ReadonlySet<string>;
  /** Its own provider routes (TENANTS_FILE): its sends are weighed at their prices against spend budgets. */
  readonly routes?: ReadonlyMap<string, readonly string[]>;
}

/** Builds the OTP service. */
export function createOtpService(deps: OtpServiceDeps): OtpService {
  const { config, keys, repo, limiter, queues } = deps;
  const now = () => deps.now?.();
  const { otp } = config;
  /** The OTP settings of the calling key: its own (TENANTS_FILE) where it has them. */
  const settingsOf = (keyName: string): KeyOtpSettings => {
    const own = deps.keySettings?.(keyName) ?? {};
    return {
      ttlSeconds: own.ttlSeconds ?? otp.ttlSeconds,
      codeLength: own.codeLength ?? otp.codeLength,
      allowedCountries: own.allowedCountries ?? otp.allowedCountries,
      routes: own.routes,
    };
  };
  const funnel = (stage: FunnelEvent['stage'], l: OtpLabels) =>
    deps.onFunnel?.({ stage, provider: l.provider || 'none', callingCode: l.callingCode });
  const counted = async (caller: Caller) => {
    const l = await store(() => limiter.hit(caller.ip, caller.keyName));
    if (l) refuse(l);
  };
  const enqueue = async (id: string) => {
    try {
      await store(() => enqueueSend(queues, id));
    } catch (err) {
      deps.onEnqueueFailed?.(id, err);
    }
  };
  /** Behind Sentinel: the OTP is on the primary and on its replicas, or the send is answered 503. */
  const mustBeDurable = async (id: string) => {
    if (deps.durable && !(await deps.durable(id))) {
      // Stored on the primary but on no replica in time: accepting it could lose it in a failover. The client's
      // retry with its Idempotency-Key gets this OTP once it is safe.
      throw new GatewayError(
        503,
        'store_unavailable',
        'the OTP could not be stored safely; try again shortly',
        undefined,
        1,
      );
    }
  };
  /** By phone number: the number's token under the caller's key names its record. */
  const targetOf = (caller: Caller, lookup: OtpLookup): OtpTarget =>
    lookup.by === 'id'
      ? lookup
      : { by: 'phone', token: numberToken(keys, caller.keyName, parsePhone(lookup.phone).e164) };
  /** The answer to a retried Idempotency-Key, from the OTP it created; its job queued again if never started. */
  const replay = async (caller: Caller, id: string): Promise<SendAnswer | null> => {
    const found = await store(() => repo.read({ by: 'id', id }, caller.keyName, now()));
    if (found.kind !== 'found') return null;
    const o = found.otp;
    if (o.status === 'pending' && o.attempts.length === 0) await enqueue(id);
    await mustBeDurable(id);
    return { id, status: 'pending', deliveryStatus: 'queued', phoneNumber: o.phoneNumber, expiresAt: o.expiresAt };
  };

  return {
    async send(caller, req) {
      const mine = settingsOf(caller.keyName);
      const phone = parsePhone(req.phoneNumber, {
        allowedCountries: mine.allowedCountries,
        allowUnknownNumberType: otp.allowUnknownNumberType,
      });
      const locale = req.locale ?? 'en';
      if (req.metadata !== undefined) {
        const problem = metadataProblem(req.metadata);
        if (problem) throw new GatewayError(400, 'invalid_metadata', problem);
      }
      const metadata = encodeMetadata(req.metadata);
      let id = newOtpId(numberToken(keys, caller.keyName, phone.e164));
      const test = deps.testNumber?.(caller.keyName, phone.e164) ?? null;
      const target = {
        keyName: caller.keyName,
        phoneNumber: phone.e164,
        country: phone.country,
        callingCode: phone.callingCode,
        price: expectedPrice(config.providers, phone.country, mine.routes),
      };
      // The request counters, the Idempotency-Key claim and the abuse guards go in one round trip. The guards count
      // this send at once; when another step refuses it (or it turns out to be a replay) they take the count back.
      // A test number never reaches a provider: no SMS for the guards to weigh or to count against a budget.
      const [counters, claimed, guards] = await Promise.allSettled([
        store(() => limiter.hit(caller.ip, caller.keyName)),
        req.idempotencyKey
          ? store(() =>
              deps.idempotency.claim(
                caller.keyName,
                req.idempotencyKey!,
                // metadata joins the fingerprint only when given: a key reused without it keeps its old fingerprint
                fingerprint(keys, `${phone.e164}\n${locale}${metadata ? `\n${metadata}` : ''}`),
                id,
                (mine.ttlSeconds + otp.recordRetentionSeconds) * 1000,
              ),
            )
          : null,
        deps.guards && !test ? store(() => deps.guards!.send(target, now())) : null,
      ]);
      const guarded = guards.status === 'fulfilled' ? guards.value : null;
      const takeBack = async () => {
        if (guarded?.kind === 'ok') await guarded.undo().catch(() => undefined);
      };
      for (const step of [counters, claimed, guards]) {
        if (step.status === 'rejected') {
          await takeBack();
          throw step.reason;
        }
      }
      const limited = counters.status === 'fulfilled' ? counters.value : null;
      const claim = claimed.status === 'fulfilled' ? claimed.value : null;
      // A retry with the Idempotency-Key of an OTP that exists gets its answer even past the request limits: a
      // 429 there would tell the client that a code it was sent was refused. It sends nothing.
      if (claim?.kind === 'replay') {
        const answer = await replay(caller, claim.otpId).catch(async (e: unknown) => {
          await takeBack();
          throw e;
        });
        if (answer) {
          await takeBack();
          return answer;
        }
        // the first request with this key got this id but never created the OTP: this one may
        id = claim.otpId;
      }
      if (limited) {
        await takeBack();
        refuse(limited);
      }
      if (claim?.kind === 'conflict') {
        await takeBack();
        throw new GatewayError(
          422,
          'idempotency_key_reused',
          'this Idempotency-Key was already used with a different request body',
        );
      }
      // the API's error handler logs and counts the refusal (its code and why travel in the GatewayError)
      if (guarded?.kind === 'refused') throw guardError(guarded.code, guarded.why, guarded.retryAfterMs);
      const code = test?.code ?? generateCode(mine.codeLength);
      // (a create the store did not answer keeps the guards' count: it may have run, and the sweep then sends it)
      const outcome = await store(() =>
        repo.create(
          {
            id,
            keyName: caller.keyName,
            phoneNumber: phone.e164,
            codeHash: hashCode(keys, id, code),
            sealedCode: encryptCode(keys, id, code),
            ttlMs: mine.ttlSeconds * 1000,
            maxAttempts: otp.maxAttempts,
            callingCode: phone.callingCode,
            country: phone.country,
            locale,
            metadata,
            events: deps.wantsEvents?.(caller.keyName) ?? false,
            testOutcome: test?.outcome ?? null,
            codeLength: code.length,
          },
          now(),
        ),
      );
      // not sent after all: the guards take their count back (best effort: a lost undo over-counts one send)
      if (outcome.kind !== 'created') await guarded?.undo().catch(() => undefined);
      if (outcome.kind === 'limited') refuse(outcome);
      if (outcome.kind === 'exists') {
        const answer = await replay(caller, id);
        if (answer) return answer;
        throw notFound();
      }
      await enqueue(id);
      await mustBeDurable(id);
      funnel('requested', { callingCode: phone.callingCode, provider: '' });
      return {
        id,
        status: 'pending',
        deliveryStatus: 'queued',
        phoneNumber: phone.e164,
        expiresAt: new Date(outcome.expiresAt).toISOString(),
      };
    },

    async verify(caller, req) {
      let target: OtpTarget;
      if (req.id) target = { by: 'id', id: req.id };
      else if (req.phoneNumber) target = targetOf(caller, { by: 'phone', phone: req.phoneNumber });
      else throw new GatewayError(400, 'invalid_request', 'give either id or phoneNumber with the code');
      // Digits, as many as the OTP's code has: its key's length now, or, after a TENANTS_FILE reload changed it, the
      // one the OTP was sent with (read then: malformed input changes nothing, not even the request counters). A
      // code of the key's length for an OTP of another (sent before a reload) is counted as a request, and the
      // verify script refuses it as malformed without using an attempt.
      const { codeLength } = settingsOf(caller.keyName);
      const malformed = (want: number) => new GatewayError(400, 'invalid_code_format', `code must be ${want} digits`);
      if (!/^\d+$/.test(req.code) || req.code.length < CODE_LENGTHS.min || req.code.length > CODE_LENGTHS.max) {
        throw malformed(codeLength);
      }
      if (req.code.length !== codeLength) {
        const own = await store(() => repo.codeLength(target, caller.keyName));
        if (own !== req.code.length) throw malformed(own ?? codeLength);
      }
      await counted(caller);
      const r = await store(() =>
        repo.verify(target, caller.keyName, (id) => hashCode(keys, id, req.code), now(), {
          given: req.code.length,
          keyLength: codeLength,
        }),
      );
      if (r.kind === 'bad_format') throw malformed(r.codeLength);
      if (r.kind === 'approved') {
        funnel('approved', r);
        // a test number's approval is not counted: its sends skip the guards, and a known fixed code must not
        // offset unverified sends to its range
        if (deps.guards && r.country && !r.test) {
          // best effort: a verification the guards missed only makes them stricter
          await deps.guards
            .approved(
              { keyName: caller.keyName, phoneNumber: r.phoneNumber, country: r.country, callingCode: r.callingCode },
              now(),
            )
            .catch(() => undefined);
        }
      } else if (r.kind === 'wrong') funnel(r.status === 'locked' ? 'locked' : 'wrong_code', r);
      else if (r.kind === 'ended' && r.justExpired) funnel('expired', r);
      switch (r.kind) {
        case 'approved':
          return { id: r.id, status: 'approved' };
        case 'not_found':
          throw notFound();
        case 'limited':
          return refuse(r);
        case 'wrong':
          throw new GatewayError(422, 'wrong_code', 'the code is wrong', {
            id: r.id,
            status: r.status,
            attemptsRemaining: r.attemptsRemaining,
          });
        case 'ended':
          throw endedError(r.id, r.status, r.replacedBy);
      }
    },

    async get(caller, lookup) {
      const target = targetOf(caller, lookup);
      await counted(caller);
      const r = await store(() => repo.read(target, caller.keyName, now()));
      if (r.kind === 'not_found') throw notFound();
      const { keyName: _owner, ...view } = r.otp;
      return view;
    },
  };
}
