import type { ProviderId } from '@otp-gateway/core';

/** How long a provider found clear is trusted without asking again, unless the settings say otherwise. */
export const DEFAULT_TRUST_MS = 250;
/** At most one reset of the shared failure count per provider in this long, for the successes of trusted sends. */
export const TRUSTED_RESET_EVERY_MS = 50;

/**
 * One process's trust in providers (see the circuit policy in circuit.ts): which providers it may send through
 * without a pick, and the resets of the shared failure count that its trusted successes owe.
 *
 * Each provider has a generation, moved by every failure this process counts against it: a pick grants trust
 * only when no failure moved it while the pick was out (a pick that read the circuit before our own failure
 * landed must not trust the provider again).
 */
export function createCircuitTrust(trustMs: number, reset: (provider: ProviderId) => Promise<void>) {
  // provider → until when (performance.now()) it is trusted: a local clock, whatever clock the scripts read
  const until = new Map<ProviderId, number>();
  const generation = new Map<ProviderId, number>();
  const lastReset = new Map<ProviderId, number>();
  const genOf = (p: ProviderId) => generation.get(p) ?? 0;
  const isTrusted = (p: ProviderId) => (until.get(p) ?? 0) > performance.now();

  return {
    genOf,
    /** A pick (taken at generation `gen`) found the provider clear: trusted for trustMs, unless a failure came since. */
    grant(provider: ProviderId, gen: number): void {
      if (trustMs > 0 && genOf(provider) === gen) until.set(provider, performance.now() + trustMs);
      else until.delete(provider);
    },
    /** The provider was found busy, failing or limited: ask about it each time. */
    withdraw(provider: ProviderId): void {
      until.delete(provider);
    },
    /** This process counted a failure against the provider. */
    failed(provider: ProviderId): void {
      until.delete(provider);
      generation.set(provider, genOf(provider) + 1);
    },
    /** The trusted providers as the plan script reads them: `,twilio,octopush,`, or '' for none. */
    list(): string {
      if (until.size === 0) return '';
      let list = '';
      for (const p of until.keys()) {
        if (isTrusted(p)) list += `,${p}`;
        else until.delete(p);
      }
      return list && `${list},`;
    },
    /**
     * A send through a trusted provider was accepted. Without a pick, it did not see failures other processes
     * counted meanwhile; as a success it must still reset them (the circuit counts failures since the last
     * success), as a picked send's success does, at once. At most one write per provider every
     * TRUSTED_RESET_EVERY_MS, not one per send: failures counted elsewhere within that time after a reset wait
     * for the next success after it. Best effort (a lost write leaves failures that the next pick sees, and that
     * send's success resets them).
     */
    succeeded(provider: ProviderId): void {
      if (!isTrusted(provider)) return;
      const t = performance.now();
      if ((lastReset.get(provider) ?? Number.NEGATIVE_INFINITY) + TRUSTED_RESET_EVERY_MS > t) return;
      lastReset.set(provider, t);
      reset(provider).catch(() => undefined);
    },
  };
}
