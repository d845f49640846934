import { StorageError } from '../errors.ts';
import type { FuseFile } from '../fuse/files.ts';
import { DEVICE_DEFAULTS } from '../defaults.ts';
import type { Logger } from '../../logger.ts';
import type { ObjectStore } from '../store/store.ts';
import type { ObjectCache } from './cache.ts';
import { DirtyUnits } from './dirty-units.ts';
import type { MetaDb } from './meta-db.ts';
import type { VolumeMetadata } from './metadata.ts';
import { ReadPath } from './read-path.ts';
import { WriteBack } from './write-back.ts';

/** Tunables of a block device. */
export interface DeviceOptions {
  /**
   * `strict`: fsync returns once data and map are durable in the object store. `relaxed`: fsync
   * returns once data is on local disk and the dirty set recorded locally; the store catches up
   * within `maxDirtyMs` (the loss window if the machine's disk is lost).
   */
  mode: 'strict' | 'relaxed';
  /** Uploads in flight at once. */
  uploadConcurrency: number;
  /** Past this many dirty bytes, writes that dirty a new unit are delayed. */
  softDirtyBytes: number;
  /** Past this many, they wait until uploads bring the dirty set back under it. */
  hardDirtyBytes: number;
  /** A fully written unit not written for this long is uploaded. */
  settleMs: number;
  /** No unit stays dirty longer than this without an upload starting. */
  maxDirtyMs: number;
  /** Units fetched ahead of a sequential reader. */
  readAheadUnits: number;
  /** fsync and a blocked write give up with an error after this long without progress. */
  flushTimeoutMs: number;
  /** Period of the write-back loop. */
  intervalMs: number;
}

/** What a block device is made of. */
export interface DeviceInit {
  volume: string;
  /** Device size in bytes (a multiple of the unit size). */
  size: number;
  /** Unit size in bytes. */
  unitSize: number;
  /** The committed head map (unit -> object id); the device keeps it current. */
  head: Map<number, string>;
  store: ObjectStore;
  cache: ObjectCache;
  logger: Logger;
  /** Directory for this device's dirty unit files. */
  dirtyDir: string;
  /** The metadata writer; absent for a read-only device (a checkpoint view). */
  metadata?: VolumeMetadata;
  /** Local database, for the relaxed mode's record of dirty units. */
  db?: MetaDb;
  /** Take over dirty units a previous run left (relaxed mode, same epoch). @default false */
  adoptDirty?: boolean;
  options?: Partial<DeviceOptions>;
}

/** Counters of a block device. */
export interface DeviceStats {
  dirtyUnits: number;
  dirtyBytes: number;
  uploadsInFlight: number;
  pendingCommits: number;
  uploaded: number;
  uploadedBytes: number;
  commits: number;
  fetched: number;
  fetchedBytes: number;
  readAheads: number;
  throttled: number;
}

/**
 * A virtual block device cut into units. Each unit is all zeros (no object), clean (an
 * immutable object, read through the local cache) or dirty (a local file, written in place,
 * uploaded later as a new object). Uploads run with bounded concurrency; their map changes are
 * committed in batches after the objects are durable. The FUSE server serves it as a file.
 *
 * This class is the front: it checks requests, cuts them into units and hands each to one of
 * three parts sharing the head map: the read path ({@link ReadPath}: cache, fetches,
 * read-ahead), the dirty units ({@link DirtyUnits}: local files, locks, checksums, sealing) and
 * write-back ({@link WriteBack}: scheduling, upload, commit, back-off, backpressure).
 */
export class BlockDevice implements FuseFile {
  readonly size: number;
  readonly unitSize: number;
  readonly readOnly: boolean;
  readonly #init: DeviceInit;
  readonly #options: DeviceOptions;
  readonly #head: Map<number, string>;
  readonly #units: DirtyUnits;
  readonly #reader: ReadPath;
  readonly #writeBack: WriteBack;

  private constructor(init: DeviceInit) {
    this.#init = init;
    this.#options = { ...DEVICE_DEFAULTS, ...init.options };
    this.size = init.size;
    this.unitSize = init.unitSize;
    this.readOnly = !init.metadata;
    this.#head = init.head;
    const { volume, unitSize, store, cache, logger } = init;
    // The parts call each other only through these closures: a copy-on-write fetches through
    // the read path, a write that dirties a new unit passes write-back's backpressure first.
    this.#units = new DirtyUnits({
      volume, unitSize, dir: init.dirtyDir, head: init.head, cache, logger, db: init.db, linkable: !!store.putFile,
      fetch: (object, unit) => this.#reader.fetch(object, unit),
      admit: () => this.#writeBack.admit(),
      checkWritable: () => this.#checkWritable(),
    });
    this.#reader = new ReadPath({ volume, size: init.size, unitSize, head: init.head, store, cache, logger, dirty: this.#units, options: this.#options });
    this.#writeBack = new WriteBack({ volume, unitSize, head: init.head, store, metadata: init.metadata, units: this.#units, logger, options: this.#options });
  }

  /** Prepares the dirty directory (adopting or discarding what a previous run left) and starts write-back. */
  static async open(init: DeviceInit): Promise<BlockDevice> {
    if (init.size % init.unitSize !== 0) throw new StorageError('ERR_STORAGE_CONFIG', `size ${init.size} is not a multiple of the unit ${init.unitSize}`);
    const device = new BlockDevice(init);
    if (!device.readOnly) {
      await device.#units.open(device.#options.mode === 'relaxed' && !!init.adoptDirty && !!init.db);
      device.#writeBack.start();
    }
    return device;
  }

  /** The volume this device serves. */
  get volume(): string {
    return this.#init.volume;
  }

  /** Counters. */
  stats(): DeviceStats {
    const writeBack = this.#writeBack.stats();
    const reads = this.#reader.stats();
    return {
      dirtyUnits: this.#units.count,
      dirtyBytes: this.#units.bytes,
      uploadsInFlight: writeBack.uploadsInFlight,
      pendingCommits: writeBack.pendingCommits,
      uploaded: writeBack.uploaded,
      uploadedBytes: writeBack.uploadedBytes,
      commits: writeBack.commits,
      fetched: reads.fetched,
      fetchedBytes: reads.fetchedBytes,
      readAheads: reads.readAheads,
      throttled: writeBack.throttled,
    };
  }

  allocatedBytes(): number {
    let units = this.#head.size;
    for (const dirty of this.#units.values()) {
      if (this.#head.has(dirty.unit)) units--;
      if (dirty.fd !== null) units++;
    }
    return units * this.unitSize;
  }

  async read(offset: number, into: Buffer): Promise<void> {
    this.#checkRange(offset, into.length);
    const first = Math.floor(offset / this.unitSize);
    const last = Math.floor((offset + into.length - 1) / this.unitSize);
    this.#reader.noteRead(first, last);
    const parts: Promise<void>[] = [];
    for (let unit = first; unit <= last; unit++) {
      const start = Math.max(offset, unit * this.unitSize);
      const end = Math.min(offset + into.length, (unit + 1) * this.unitSize);
      parts.push(this.#reader.readUnit(unit, start - unit * this.unitSize, into.subarray(start - offset, end - offset)));
    }
    await settle(parts);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, data.length);
    const parts: Promise<void>[] = [];
    for (let unit = Math.floor(offset / this.unitSize); unit * this.unitSize < offset + data.length; unit++) {
      const start = Math.max(offset, unit * this.unitSize);
      const end = Math.min(offset + data.length, (unit + 1) * this.unitSize);
      parts.push(this.#units.write(unit, start - unit * this.unitSize, data.subarray(start - offset, end - offset)));
    }
    await settle(parts);
  }

  async discard(offset: number, length: number): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, length);
    const parts: Promise<void>[] = [];
    for (let unit = Math.floor(offset / this.unitSize); unit * this.unitSize < offset + length; unit++) {
      const start = Math.max(offset, unit * this.unitSize);
      const end = Math.min(offset + length, (unit + 1) * this.unitSize);
      if (end - start === this.unitSize) parts.push(this.#units.discard(unit));
      else if (this.#units.hasData(unit)) parts.push(this.#units.zero(unit, start - unit * this.unitSize, end - start));
    }
    await settle(parts);
  }

  async fsync(): Promise<void> {
    this.#checkWritable();
    if (this.#options.mode === 'relaxed') return this.#units.syncLocal();
    await this.flush();
  }

  /**
   * Resolves once every change made before the call is uploaded and committed to the store
   * (whatever the mode). Fails with ERR_STORE_UNAVAILABLE after `flushTimeoutMs` without success.
   */
  flush(): Promise<void> {
    return this.#writeBack.flush();
  }

  /** One step of the write-back loop (see {@link WriteBack.syncOnce}); tests may call it directly. */
  syncOnce(): void {
    this.#writeBack.syncOnce();
  }

  /**
   * Stops write-back. With `flush` (the default) everything is uploaded first, so unmount waits
   * for durability; without it, dirty units stay on local disk (relaxed mode adopts them on the
   * next open; strict mode discards them).
   */
  async stop(options: { flush?: boolean } = {}): Promise<void> {
    // Uploads already past their snapshot finish (and commit) before the files close.
    await this.#writeBack.stop(options);
    await this.#units.close();
    this.#writeBack.notify();
  }

  #checkRange(offset: number, length: number): void {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new StorageError('ERR_DEVICE_RANGE', `volume ${this.volume}: ${length} bytes at ${offset} outside ${this.size}`, { fields: { volume: this.volume } });
    }
  }

  #checkWritable(): void {
    if (this.readOnly) throw new StorageError('ERR_DEVICE_RANGE', `volume ${this.volume} view is read-only`);
    this.#writeBack.checkOpen();
  }
}

/**
 * Waits for every part of a request before failing with the first error: a part still running
 * after the reply would use a request buffer the reader thread already reuses.
 */
async function settle(parts: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(parts);
  for (const result of results) if (result.status === 'rejected') throw result.reason;
}
