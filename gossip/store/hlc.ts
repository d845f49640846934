const COUNTER_BITS = 16n;

/**
 * A hybrid logical clock: timestamps are `(ms << 16) | counter` as bigint, strictly increasing per
 * site, and pulled forward by remote timestamps that are not too far ahead of the wall clock.
 */
export class Hlc {
  readonly #now: () => number;
  readonly #maxDriftMs: number;
  #last: bigint;

  constructor(now: () => number, last = 0n, maxDriftMs = 60_000) {
    this.#now = now;
    this.#last = last;
    this.#maxDriftMs = maxDriftMs;
  }

  /** The next local timestamp: the wall clock if it moved past the last one, else the last plus one. */
  next(): bigint {
    const physical = BigInt(Math.max(0, Math.floor(this.#now()))) << COUNTER_BITS;
    this.#last = physical > this.#last ? physical : this.#last + 1n;
    return this.#last;
  }

  /**
   * Takes a remote timestamp into account so later local ones sort after it. A timestamp more than
   * the allowed drift ahead of the wall clock is ignored (a peer's broken clock must not drag ours).
   */
  observe(remote: bigint): void {
    if (remote <= this.#last) return;
    if (hlcMillis(remote) > Math.floor(this.#now()) + this.#maxDriftMs) return;
    this.#last = remote;
  }

  /** The last timestamp issued or observed. */
  get last(): bigint {
    return this.#last;
  }
}

/** The wall-clock milliseconds of an HLC timestamp. */
export function hlcMillis(ts: bigint): number {
  return Number(ts >> COUNTER_BITS);
}
