import type { Logger } from '../vm/index.ts';

/** How a warm pool is built. */
export interface PoolInit<T> {
  /** Number of ready entries to keep. */
  depth: number;
  /** Entries warmed at the same time. */
  concurrency: number;
  /** Prepares one entry (a sandbox with a created container). */
  warm: () => Promise<T>;
  /** Disposes an entry that will never be used. */
  discard: (entry: T) => Promise<void>;
  logger: Logger;
}

/** What `GET /v1/pool` reports. */
export interface PoolStatus {
  target: number;
  ready: number;
  warming: number;
  /** Entries handed out since start. */
  taken: number;
  /** Warm-ups that failed since start. */
  failures: number;
}

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;

/** Keeps `depth` prepared entries ready and refills in the background after each take. */
export class WarmPool<T> {
  readonly #init: PoolInit<T>;
  readonly #ready: T[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  #taken = 0;
  #failures = 0;
  #retryMs = RETRY_FIRST_MS;
  #retryTimer: NodeJS.Timeout | undefined;
  #running = false;
  #waiters: (() => void)[] = [];

  constructor(init: PoolInit<T>) {
    this.#init = init;
  }

  /** Starts filling the pool. */
  start(): void {
    this.#running = true;
    this.#refill();
  }

  /** Dequeues a ready entry, or undefined when the pool is empty; a refill follows. */
  take(): T | undefined {
    const entry = this.#ready.shift();
    if (entry !== undefined) this.#taken += 1;
    this.#refill();
    return entry;
  }

  /** Current counts. */
  status(): PoolStatus {
    return { target: this.#init.depth, ready: this.#ready.length, warming: this.#inFlight.size, taken: this.#taken, failures: this.#failures };
  }

  /** Resolves once the pool holds `depth` ready entries (immediately for depth 0). */
  full(): Promise<void> {
    if (this.#ready.length >= this.#init.depth) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Stops refilling, waits for warm-ups under way, and discards every ready entry. */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#retryTimer);
    await Promise.allSettled([...this.#inFlight]);
    const entries = this.#ready.splice(0);
    await Promise.allSettled(entries.map((entry) => this.#init.discard(entry)));
    for (const wake of this.#waiters.splice(0)) wake();
  }

  #refill(): void {
    if (!this.#running || this.#retryTimer) return;
    while (this.#ready.length + this.#inFlight.size < this.#init.depth && this.#inFlight.size < this.#init.concurrency) {
      const job: Promise<void> = this.#warmOne().finally(() => {
        this.#inFlight.delete(job);
        this.#refill();
      });
      this.#inFlight.add(job);
    }
  }

  async #warmOne(): Promise<void> {
    try {
      const entry = await this.#init.warm();
      if (!this.#running) {
        await this.#init.discard(entry);
        return;
      }
      this.#ready.push(entry);
      this.#retryMs = RETRY_FIRST_MS;
      if (this.#ready.length >= this.#init.depth) for (const wake of this.#waiters.splice(0)) wake();
    } catch (error) {
      this.#failures += 1;
      this.#init.logger.error('pool warm-up failed', { error: (error as Error).message, retryMs: this.#retryMs });
      // Back off so a broken host does not spin creating and failing sandboxes.
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.#refill();
      }, this.#retryMs);
      this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
    }
  }
}
