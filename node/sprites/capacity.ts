import { setTimeout as sleep } from 'node:timers/promises';
import { PeerError } from '../errors.ts';

/** How long a create that may wait for room waits at most. */
const WAIT_MS = 60_000;
const POLL_MS = 200;
/** What a refused create is told to wait: room comes when a sprite here stops, sleeps cold or goes. */
const RETRY_AFTER_SECONDS = 10;

/**
 * Room for new sprites on this peer: at most `capacity` sprites run here (awake or in warm sleep),
 * creates under way counted. A create takes a place before it starts a sandbox and gives it back
 * once the sandbox counts as running (or the create failed).
 */
export class Capacity {
  readonly #capacity: number;
  readonly #running: () => number;
  #creating = 0;

  constructor(capacity: number, running: () => number) {
    this.#capacity = capacity;
    this.#running = running;
  }

  /** True when one more sprite fits now. */
  hasRoom(): boolean {
    return this.#running() + this.#creating < this.#capacity;
  }

  /**
   * Takes a place for a create and returns its release. When the peer is full: waits (for at most
   * a minute) if `wait`, else at once, answers `concurrent_sprite_limit_exceeded` (429).
   */
  async take(wait: boolean): Promise<() => void> {
    const deadline = Date.now() + WAIT_MS;
    while (!this.hasRoom()) {
      if (!wait || Date.now() >= deadline) throw this.#full(wait);
      await sleep(POLL_MS);
    }
    // No await between the check and the count: two creates cannot take one place.
    this.#creating += 1;
    let released = false;
    return () => {
      if (!released) this.#creating -= 1;
      released = true;
    };
  }

  #full(waited: boolean): PeerError {
    const count = this.#running() + this.#creating;
    const why = waited ? `no place came free within ${WAIT_MS / 1000} s; try again later` : 'try again later, or create with wait_for_capacity';
    const message = `every peer that could take the sprite is full: this one runs ${count} of its capacity of ${this.#capacity}; ${why}`;
    return new PeerError('concurrent_sprite_limit_exceeded', message, { details: { retry_after_seconds: RETRY_AFTER_SECONDS, current_count: count, limit: this.#capacity } });
  }
}
