import { normalizeName } from './policy-match.ts';

/** An address and a time in seconds: how long it had been admitted for, or has left. */
export interface Withdrawn {
  address: string;
  seconds: number;
}

const MAX_ADDRESSES = 4096;

/**
 * What the resolver admitted for one sprite: each address with the names whose answers gave it and
 * until when. When the policy changes, the addresses that no still-allowed name vouches for are the
 * ones whose connections must be cut; those that some allowed name still gives stay open.
 */
export class Admissions {
  /** address -> name -> expiry (ms since the epoch). */
  readonly #byAddress = new Map<string, Map<string, number>>();

  /**
   * Notes that `name` gave `addresses` for `ttlSeconds`; answers those the firewall must (re)admit:
   * new ones, and those whose admission had less than half of this TTL left.
   */
  record(name: string, addresses: readonly string[], ttlSeconds: number, now = Date.now()): string[] {
    this.#expire(now);
    const until = now + ttlSeconds * 1000;
    const key = normalizeName(name);
    const due: string[] = [];
    for (const address of addresses) {
      if (this.#until(address) < now + (ttlSeconds * 1000) / 2) due.push(address);
      let names = this.#byAddress.get(address);
      if (!names) {
        // Bounded: a sprite resolving endlessly many names forgets the oldest; the firewall's
        // timeouts still end those admissions on their own.
        if (this.#byAddress.size >= MAX_ADDRESSES) this.#byAddress.delete(this.#byAddress.keys().next().value!);
        names = new Map();
        this.#byAddress.set(address, names);
      }
      names.set(key, Math.max(names.get(key) ?? 0, until));
    }
    return due;
  }

  /** Every address admitted now, with the time it has left (seconds). */
  live(now = Date.now()): Withdrawn[] {
    this.#expire(now);
    return [...this.#byAddress.keys()].map((address) => ({ address, seconds: Math.ceil((this.#until(address) - now) / 1000) }));
  }

  /**
   * Forgets the names `allowed` no longer allows, and answers the addresses left with no allowed
   * name, each with the longest time it had left.
   */
  withdraw(allowed: (name: string) => boolean, now = Date.now()): Withdrawn[] {
    this.#expire(now);
    const withdrawn: Withdrawn[] = [];
    for (const [address, names] of this.#byAddress) {
      let longest = 0;
      for (const [name, until] of names) {
        if (allowed(name)) continue;
        longest = Math.max(longest, until);
        names.delete(name);
      }
      if (names.size > 0) continue;
      this.#byAddress.delete(address);
      withdrawn.push({ address, seconds: Math.max(1, Math.ceil((longest - now) / 1000)) });
    }
    return withdrawn;
  }

  /** When the last admission of `address` runs out (0: none). */
  #until(address: string): number {
    return Math.max(0, ...(this.#byAddress.get(address)?.values() ?? []));
  }

  #expire(now: number): void {
    for (const [address, names] of this.#byAddress) {
      for (const [name, until] of names) if (until <= now) names.delete(name);
      if (names.size === 0) this.#byAddress.delete(address);
    }
  }
}
