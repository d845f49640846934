import { describe } from '../errors.ts';
import type { Logger } from '../../logger.ts';
import type { ObjectStore } from '../store/store.ts';
import { appendRecord, writeSnapshot } from './journal.ts';
import type { Lease } from './lease.ts';
import type { LogRecord, MetaDb, MetaOp, VolumeRecord } from './meta-db.ts';

/** What a volume's metadata writer needs. */
export interface VolumeMetadataInit {
  volume: string;
  db: MetaDb;
  store: ObjectStore;
  lease: Lease;
  logger: Logger;
  /** Write a snapshot (and compact the log) after this many records. @default 256 */
  snapshotEvery?: number;
}

/**
 * The metadata writer of one volume this data dir holds the lease for. A commit appends a log
 * record to the object store first and applies it to SQLite second, so the local database never
 * claims more than the store holds. Commits run one at a time.
 */
export class VolumeMetadata {
  readonly volume: string;
  readonly #init: VolumeMetadataInit;
  #chain: Promise<unknown> = Promise.resolve();
  #snapshotting: Promise<void> | undefined;

  constructor(init: VolumeMetadataInit) {
    this.volume = init.volume;
    this.#init = init;
  }

  /** The volume's current local record. */
  get record(): VolumeRecord {
    return this.#init.db.volume(this.volume)!;
  }

  /** The lease this writer commits under. */
  get lease(): Lease {
    return this.#init.lease;
  }

  /**
   * Makes `ops` durable: checks the lease, appends the next log record to the store, then applies
   * it locally. Resolves with the record's sequence number. A failed commit changes nothing and
   * may be retried with the same ops.
   */
  commit(ops: MetaOp[]): Promise<number> {
    const run = this.#chain.then(() => this.#commit(ops));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** Writes a snapshot of the current state now (and compacts the log). */
  snapshot(): Promise<void> {
    this.#snapshotting ??= (async () => {
      try {
        const state = this.#init.db.exportState(this.volume);
        await writeSnapshot(this.#init.store, state);
        this.#init.db.setSnapSeq(this.volume, state.seq);
      } finally {
        this.#snapshotting = undefined;
      }
    })();
    return this.#snapshotting;
  }

  /** Waits for pending commits and any snapshot in progress. */
  async idle(): Promise<void> {
    await this.#chain;
    await this.#snapshotting?.catch(() => undefined);
  }

  async #commit(ops: MetaOp[]): Promise<number> {
    await this.#init.lease.ensure();
    const current = this.record;
    const record: LogRecord = { volume: this.volume, seq: current.seq + 1, epoch: this.#init.lease.epoch, time: Date.now(), ops };
    // Map changes cannot fail to apply; anything else is tried first, so the store never holds a
    // record that SQLite would refuse.
    if (ops.some((op) => op.op !== 'map')) this.#init.db.check(record);
    await appendRecord(this.#init.store, record);
    this.#init.db.apply(record);
    if (record.seq - current.snapSeq >= (this.#init.snapshotEvery ?? 256)) {
      this.snapshot().catch((error) => this.#init.logger.warn('metadata snapshot failed', { volume: this.volume, error: describe(error) }));
    }
    return record.seq;
  }
}
