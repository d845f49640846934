/**
 * A readers-writer lock for one unit: data reads and writes of a materialized unit share it;
 * state changes (materialize, snapshot for upload, finish upload, punch) take it alone.
 * Waiters are served in arrival order, so a writer is not starved by a stream of readers.
 */
export class RwLock {
  #shared = 0;
  #exclusive = false;
  readonly #queue: Array<{ exclusive: boolean; wake: () => void }> = [];

  /** True when nobody holds or waits for the lock. */
  get idle(): boolean {
    return this.#shared === 0 && !this.#exclusive && this.#queue.length === 0;
  }

  /** Runs `fn` while holding the lock shared. */
  async shared<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.#exclusive || this.#queue.length > 0) await new Promise<void>((wake) => this.#queue.push({ exclusive: false, wake }));
    else this.#shared++;
    try {
      return await fn();
    } finally {
      this.#shared--;
      this.#next();
    }
  }

  /** Runs `fn` while holding the lock alone. */
  async exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.#exclusive || this.#shared > 0 || this.#queue.length > 0) await new Promise<void>((wake) => this.#queue.push({ exclusive: true, wake }));
    else this.#exclusive = true;
    try {
      return await fn();
    } finally {
      this.#exclusive = false;
      this.#next();
    }
  }

  #next(): void {
    while (this.#queue.length > 0 && !this.#exclusive) {
      const head = this.#queue[0]!;
      if (head.exclusive) {
        if (this.#shared > 0) return;
        this.#queue.shift();
        this.#exclusive = true;
        head.wake();
        return;
      }
      this.#queue.shift();
      this.#shared++;
      head.wake();
    }
  }
}

/** Per-unit locks created on demand and dropped when idle. */
export class UnitLocks {
  readonly #locks = new Map<number, RwLock>();

  /** Runs `fn` holding unit `unit` shared. */
  shared<T>(unit: number, fn: () => Promise<T> | T): Promise<T> {
    const lock = this.#get(unit);
    return lock.shared(fn).finally(() => this.#drop(unit, lock));
  }

  /** Runs `fn` holding unit `unit` alone. */
  exclusive<T>(unit: number, fn: () => Promise<T> | T): Promise<T> {
    const lock = this.#get(unit);
    return lock.exclusive(fn).finally(() => this.#drop(unit, lock));
  }

  #get(unit: number): RwLock {
    let lock = this.#locks.get(unit);
    if (!lock) this.#locks.set(unit, (lock = new RwLock()));
    return lock;
  }

  #drop(unit: number, lock: RwLock): void {
    if (lock.idle && this.#locks.get(unit) === lock) this.#locks.delete(unit);
  }
}
