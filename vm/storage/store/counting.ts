import type { ObjectInfo, ObjectStore, PutOptions, StoredObject } from './store.ts';

/** Request and byte counters of a {@link CountingStore}. */
export interface StoreCounters {
  gets: number;
  puts: number;
  deletes: number;
  lists: number;
  bytesIn: number;
  bytesOut: number;
}

/** Wraps a store and counts its requests (benchmarks report requests per GiB written). */
export class CountingStore implements ObjectStore {
  readonly counters: StoreCounters = { gets: 0, puts: 0, deletes: 0, lists: 0, bytesIn: 0, bytesOut: 0 };
  readonly #inner: ObjectStore;

  readonly putFile?: (key: string, path: string) => Promise<{ etag: string; size: number }>;
  readonly syncFiles?: () => Promise<void>;

  constructor(inner: ObjectStore) {
    this.#inner = inner;
    // Only offered when the inner store has it: callers test for the method.
    if (inner.putFile) {
      this.putFile = async (key, path) => {
        this.counters.puts++;
        const out = await inner.putFile!(key, path);
        this.counters.bytesOut += out.size;
        return out;
      };
      this.syncFiles = () => inner.syncFiles!();
    }
  }

  get url(): string {
    return this.#inner.url;
  }

  get conditionalWrites(): boolean {
    return this.#inner.conditionalWrites;
  }

  async get(key: string): Promise<StoredObject> {
    this.counters.gets++;
    const out = await this.#inner.get(key);
    this.counters.bytesIn += out.body.length;
    return out;
  }

  put(key: string, body: Buffer, options?: PutOptions): Promise<{ etag: string }> {
    this.counters.puts++;
    this.counters.bytesOut += body.length;
    return this.#inner.put(key, body, options);
  }

  delete(key: string): Promise<void> {
    this.counters.deletes++;
    return this.#inner.delete(key);
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    this.counters.lists++;
    return this.#inner.list(prefix);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
