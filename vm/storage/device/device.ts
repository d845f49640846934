import { close, constants, fdatasync, fstat, ftruncate, open } from 'node:fs';
import { copyFile, link, mkdir, readFile, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { directIoFits } from '../aligned.ts';
import { DEVICE_DEFAULTS } from '../defaults.ts';
import { StorageError, describe, hasCode } from '../errors.ts';
import type { FuseFile } from '../fuse/server.ts';
import type { Logger } from '../logger.ts';
import type { ObjectStore } from '../store/store.ts';
import type { ObjectCache } from './cache.ts';
import type { MetaDb } from './meta-db.ts';
import type { VolumeMetadata } from './metadata.ts';
import { crc32Combine, isZero, newObjectId, objectIdWithChecksum, objectKey, verifyObject } from './objects.ts';
import { UnitLocks } from './rwlock.ts';
import { SpareFiles } from './spare-files.ts';

/** Spare unit files kept ready per writable volume (see SpareFiles). */
const SPARE_FILES = 8;
const openFd = promisify(open);
const closeFd = promisify(close);
const truncateFd = promisify(ftruncate);
const syncFd = promisify(fdatasync);
const statFd = promisify(fstat);

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

interface Dirty {
  readonly unit: number;
  /** Open descriptor of the unit's file; null for a unit that is all zeros (punched). */
  fd: number | null;
  /** Bumped by every change; an upload snapshots it. */
  gen: number;
  /** Generation of the last committed upload. */
  committedGen: number;
  uploading: boolean;
  firstDirty: number;
  lastWrite: number;
  /** Bytes written since the unit became dirty (capped at the unit size): a full unit is done. */
  written: number;
  /**
   * The file is also an object in the store (hard-linked by `putFile`), so it is immutable: the
   * next write replaces it with a copy first.
   */
  sealed: boolean;
  /** An O_DIRECT descriptor of the same file, opened on the first page-aligned write. */
  direct: Promise<number> | null;
  /**
   * Checksums of the writes since the unit became dirty, by offset, while none overlapped: once
   * they cover the whole unit, its checksum is known without reading the file back (the bytes
   * were written with O_DIRECT and are no longer in memory). Null after an overlap.
   */
  pieces: Map<number, Piece> | null;
}

interface Piece {
  length: number;
  crc: number;
  zero: boolean;
}

interface Uploaded {
  dirty: Dirty;
  gen: number;
  object: string | null;
}

/**
 * A virtual block device cut into units. Each unit is all zeros (no object), clean (an
 * immutable object, read through the local cache) or dirty (a local file, written in place,
 * uploaded later as a new object). Uploads run with bounded concurrency; their map changes are
 * committed in batches after the objects are durable. The FUSE server serves it as a file.
 */
export class BlockDevice implements FuseFile {
  readonly size: number;
  readonly unitSize: number;
  readonly readOnly: boolean;
  readonly #init: DeviceInit;
  readonly #options: DeviceOptions;
  readonly #head: Map<number, string>;
  readonly #dirty = new Map<number, Dirty>();
  readonly #locks = new UnitLocks();
  readonly #fetches = new Map<string, Promise<Buffer>>();
  readonly #zeros: Buffer;
  /** Unit-size buffers reused by uploads (at most `uploadConcurrency` are ever out). */
  readonly #buffers: Buffer[] = [];
  readonly #logger: Logger;
  #pending: Uploaded[] = [];
  #committing: Promise<void> | undefined;
  #uploads = 0;
  #urgent = 0;
  #dirtyBytes = 0;
  #changed = Promise.withResolvers<void>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #fenced: StorageError | undefined;
  #lastError: unknown;
  #backoffUntil = 0;
  /** Counts flushes that cleared the back-off; failures of attempts started before the latest do not set a new one. */
  #retryRound = 0;
  #failures = 0;
  #lastReadUnit = -2;
  #streak = 0;
  #prefetching = 0;
  /** Uploads hard-link dirty files into the store while it offers `putFile` on this filesystem. */
  #linkable: boolean;
  /** Page-aligned writes use O_DIRECT until the filesystem refuses it. */
  #directIo = true;
  /** Empty files for units that start afresh; none on a read-only device. */
  #spares: SpareFiles | undefined;
  readonly #stats = { uploaded: 0, uploadedBytes: 0, commits: 0, fetched: 0, fetchedBytes: 0, readAheads: 0, throttled: 0 };

  private constructor(init: DeviceInit) {
    this.#init = init;
    this.#options = { ...DEVICE_DEFAULTS, ...init.options };
    this.size = init.size;
    this.unitSize = init.unitSize;
    this.readOnly = !init.metadata;
    this.#head = init.head;
    this.#zeros = Buffer.alloc(init.unitSize);
    this.#logger = init.logger;
    this.#linkable = !!init.store.putFile;
  }

  /** Prepares the dirty directory (adopting or discarding what a previous run left) and starts write-back. */
  static async open(init: DeviceInit): Promise<BlockDevice> {
    if (init.size % init.unitSize !== 0) throw new StorageError('ERR_STORAGE_CONFIG', `size ${init.size} is not a multiple of the unit ${init.unitSize}`);
    const device = new BlockDevice(init);
    if (!device.readOnly) {
      await device.#prepareDirty();
      device.#spares = new SpareFiles(init.dirtyDir, init.unitSize, SPARE_FILES);
      device.#timer = setInterval(() => device.syncOnce(), device.#options.intervalMs);
      device.#timer.unref();
    }
    return device;
  }

  /** The volume this device serves. */
  get volume(): string {
    return this.#init.volume;
  }

  /** Counters. */
  stats(): DeviceStats {
    return {
      dirtyUnits: this.#dirty.size, dirtyBytes: this.#dirtyBytes, uploadsInFlight: this.#uploads, pendingCommits: this.#pending.length, ...this.#stats,
    };
  }

  allocatedBytes(): number {
    let units = this.#head.size;
    for (const dirty of this.#dirty.values()) {
      if (this.#head.has(dirty.unit)) units--;
      if (dirty.fd !== null) units++;
    }
    return units * this.unitSize;
  }

  async read(offset: number, into: Buffer): Promise<void> {
    this.#checkRange(offset, into.length);
    const first = Math.floor(offset / this.unitSize);
    const last = Math.floor((offset + into.length - 1) / this.unitSize);
    this.#noteRead(first, last);
    const parts: Promise<void>[] = [];
    for (let unit = first; unit <= last; unit++) {
      const start = Math.max(offset, unit * this.unitSize);
      const end = Math.min(offset + into.length, (unit + 1) * this.unitSize);
      parts.push(this.#readUnit(unit, start - unit * this.unitSize, into.subarray(start - offset, end - offset)));
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
      parts.push(this.#writeUnit(unit, start - unit * this.unitSize, data.subarray(start - offset, end - offset)));
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
      if (end - start === this.unitSize) parts.push(this.#discardUnit(unit));
      else if (this.#hasData(unit)) parts.push(this.#writeUnit(unit, start - unit * this.unitSize, this.#zeros.subarray(0, end - start)));
    }
    await settle(parts);
  }

  async fsync(): Promise<void> {
    this.#checkWritable();
    if (this.#options.mode === 'relaxed') return this.#syncLocal();
    await this.flush();
  }

  /**
   * Resolves once every change made before the call is uploaded and committed to the store
   * (whatever the mode). Fails with ERR_STORE_UNAVAILABLE after `flushTimeoutMs` without success.
   */
  async flush(): Promise<void> {
    if (this.readOnly) return;
    const targets = [...this.#dirty.values()].filter((d) => d.gen > d.committedGen).map((d) => [d, d.gen] as const);
    if (targets.length === 0) return;
    this.#urgent++;
    // An explicit flush tries at once rather than waiting out a back-off from earlier failures.
    this.#backoffUntil = 0;
    this.#retryRound++;
    this.#notify();
    try {
      const deadline = Date.now() + this.#options.flushTimeoutMs;
      for (;;) {
        if (this.#fenced) throw this.#fenced;
        const left = targets.filter(([d, gen]) => this.#dirty.get(d.unit) === d && d.committedGen < gen);
        if (left.length === 0) return;
        this.syncOnce();
        if (Date.now() > deadline) {
          throw new StorageError('ERR_STORE_UNAVAILABLE', `volume ${this.volume}: flush timed out with ${left.length} units unsaved: ${describe(this.#lastError)}`, {
            cause: this.#lastError, fields: { volume: this.volume },
          });
        }
        await this.#waitForChange();
      }
    } finally {
      this.#urgent--;
    }
  }

  /**
   * One step of the write-back loop: starts uploads of the dirty units that are due (settled,
   * too old, or all of them while a flush waits or the dirty set is over the soft limit), up to
   * the concurrency limit. The timer calls it; tests may call it directly.
   */
  syncOnce(): void {
    if (this.#stopped || this.#fenced || this.readOnly) return;
    const now = Date.now();
    if (now < this.#backoffUntil) return;
    const pressure = this.#dirtyBytes > this.#options.softDirtyBytes;
    // The map iterates in insertion order, which is the order units became dirty: oldest first.
    for (const dirty of this.#dirty.values()) {
      if (this.#uploads >= this.#options.uploadConcurrency) break;
      if (dirty.uploading || dirty.gen <= dirty.committedGen) continue;
      // A fully written unit that went quiet (a sequential writer moved on) goes early; a unit
      // written here and there waits for its age limit, since uploading it would only make the
      // next small write copy the whole unit again.
      const settled = dirty.written >= this.unitSize && now - dirty.lastWrite >= this.#options.settleMs;
      const due = this.#urgent > 0 || pressure || settled || now - dirty.firstDirty >= this.#options.maxDirtyMs;
      if (due) void this.#upload(dirty);
    }
  }

  /**
   * Stops write-back. With `flush` (the default) everything is uploaded first, so unmount waits
   * for durability; without it, dirty units stay on local disk (relaxed mode adopts them on the
   * next open; strict mode discards them).
   */
  async stop(options: { flush?: boolean } = {}): Promise<void> {
    if (options.flush !== false && !this.#fenced) await this.flush();
    this.#stopped = true;
    clearInterval(this.#timer);
    // Uploads already past their snapshot finish (and commit) before the files close.
    const deadline = Date.now() + this.#options.flushTimeoutMs;
    while ((this.#committing || this.#uploads > 0) && !this.#fenced && Date.now() < deadline) await this.#waitForChange();
    for (const dirty of this.#dirty.values()) {
      await this.#closeFiles(dirty).catch(() => undefined);
    }
    await this.#spares?.close();
    this.#init.cache.pin(-this.#dirtyBytes);
    this.#dirtyBytes = 0;
    this.#notify();
  }

  async #prepareDirty(): Promise<void> {
    const dir = this.#init.dirtyDir;
    const adopt = this.#options.mode === 'relaxed' && this.#init.adoptDirty && this.#init.db;
    const units = adopt ? this.#init.db!.dirtyUnits(this.volume) : [];
    if (!adopt) {
      await rm(dir, { recursive: true, force: true });
      this.#init.db?.setDirtyUnits(this.volume, []);
    }
    await mkdir(dir, { recursive: true });
    // Files of units that are not recorded dirty (finished uploads interrupted by a crash) go.
    const keep = new Set(units.map(String));
    for (const name of await readdir(dir)) if (!keep.has(name)) await unlink(join(dir, name)).catch(() => undefined);
    const now = Date.now();
    for (const unit of units) {
      const fd = await this.#openPrivate(this.#dirtyPath(unit)).catch(() => null);
      this.#dirty.set(unit, { unit, fd, gen: 1, committedGen: 0, uploading: false, firstDirty: now, lastWrite: 0, written: 0, sealed: false, direct: null, pieces: new Map() });
      if (fd !== null) this.#addDirtyBytes(this.unitSize);
    }
    if (units.length > 0) this.#logger.info('adopted dirty units', { volume: this.volume, units: units.length });
  }

  /**
   * Opens a dirty file for writing in place. A file with other links may be an object in the
   * store (an upload linked it before a crash), so it is first replaced by a private copy.
   */
  async #openPrivate(path: string): Promise<number> {
    const fd = await openFd(path, 'r+');
    if ((await statFd(fd)).nlink === 1) return fd;
    await closeFd(fd);
    return replaceWithCopy(path);
  }

  #checkRange(offset: number, length: number): void {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new StorageError('ERR_DEVICE_RANGE', `volume ${this.volume}: ${length} bytes at ${offset} outside ${this.size}`, { fields: { volume: this.volume } });
    }
  }

  #checkWritable(): void {
    if (this.readOnly) throw new StorageError('ERR_DEVICE_RANGE', `volume ${this.volume} view is read-only`);
    if (this.#fenced) throw this.#fenced;
    if (this.#stopped) throw new StorageError('ERR_DEVICE_STOPPED', `volume ${this.volume}: device stopped`, { fields: { volume: this.volume } });
  }

  #dirtyPath(unit: number): string {
    return join(this.#init.dirtyDir, String(unit));
  }

  #hasData(unit: number): boolean {
    const dirty = this.#dirty.get(unit);
    return dirty ? dirty.fd !== null : this.#head.has(unit);
  }

  #addDirtyBytes(bytes: number): void {
    this.#dirtyBytes += bytes;
    this.#init.cache.pin(bytes);
  }

  #notify(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }

  async #waitForChange(): Promise<void> {
    // Also wake periodically: a back-off may have expired with nothing else changing.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#changed.promise, new Promise<void>((resolve) => { timer = setTimeout(resolve, this.#options.intervalMs * 2); })]);
    clearTimeout(timer);
  }

  async #readUnit(unit: number, at: number, out: Buffer): Promise<void> {
    if (this.#dirty.has(unit)) {
      const done = await this.#locks.shared(unit, async () => {
        const dirty = this.#dirty.get(unit);
        if (!dirty) return false;
        if (dirty.fd === null) out.fill(0);
        else await this.#init.cache.io.read(dirty.fd, out, at);
        return true;
      });
      if (done) return;
    }
    const object = this.#head.get(unit);
    if (!object) {
      out.fill(0);
      return;
    }
    if (await this.#init.cache.read(object, at, out)) return;
    const data = await this.#fetch(object, unit);
    data.copy(out, 0, at, at + out.length);
  }

  /** Fetches, verifies and caches an object; concurrent fetches of one object share the request. */
  #fetch(object: string, unit: number): Promise<Buffer> {
    let fetching = this.#fetches.get(object);
    if (!fetching) {
      fetching = (async () => {
        const key = objectKey(object);
        try {
          const { body } = await this.#init.store.get(key);
          verifyObject(object, body, this.unitSize);
          this.#stats.fetched++;
          this.#stats.fetchedBytes += body.length;
          await this.#init.cache.insert(object, body).catch((error) => this.#logger.warn('cache insert failed', { object, error: describe(error) }));
          return body;
        } catch (error) {
          // The one log line that names the object: the read fails with EIO, never wrong data.
          this.#logger.error('object read failed', {
            volume: this.volume, unit, object, key, code: (error as { code?: string }).code, error: describe(error),
          });
          throw error;
        }
      })().finally(() => this.#fetches.delete(object));
      this.#fetches.set(object, fetching);
    }
    return fetching;
  }

  #noteRead(first: number, last: number): void {
    // Reads of the same or the next unit count as sequential; a streak triggers read-ahead.
    this.#streak = first === this.#lastReadUnit || first === this.#lastReadUnit + 1 ? this.#streak + 1 : 0;
    this.#lastReadUnit = last;
    if (this.#streak < 4 || this.#options.readAheadUnits === 0) return;
    const units = this.size / this.unitSize;
    for (let unit = last + 1; unit <= last + this.#options.readAheadUnits && unit < units; unit++) {
      if (this.#prefetching >= this.#options.readAheadUnits) break;
      if (this.#dirty.has(unit)) continue;
      const object = this.#head.get(unit);
      if (!object || this.#init.cache.has(object) || this.#fetches.has(object)) continue;
      this.#prefetching++;
      this.#stats.readAheads++;
      this.#fetch(object, unit).catch(() => undefined).finally(() => { this.#prefetching--; });
    }
  }

  async #writeUnit(unit: number, at: number, data: Buffer): Promise<void> {
    for (;;) {
      const dirty = this.#dirty.get(unit);
      if (!dirty || dirty.fd === null || dirty.sealed) {
        if (!dirty) await this.#admit();
        await this.#locks.exclusive(unit, async () => {
          const again = this.#dirty.get(unit);
          if (again && again.fd !== null && !again.sealed) return;
          this.#checkWritable();
          await this.#materialize(unit, again, at === 0 && data.length === this.unitSize);
        });
      }
      const written = await this.#locks.shared(unit, async () => {
        const current = this.#dirty.get(unit);
        if (!current || current.fd === null || current.sealed) return false;
        await this.#writeFile(current, data, at);
        if (this.#linkable) this.#notePiece(current, at, data);
        current.gen++;
        current.lastWrite = Date.now();
        current.written = Math.min(this.unitSize, current.written + data.length);
        return true;
      });
      if (written) return;
    }
  }

  /**
   * Writes into a unit's file (caller holds the unit shared). A page-aligned request buffer at a
   * page-aligned offset goes through O_DIRECT: the payload the FUSE reader placed on a page
   * boundary reaches the disk without being copied into the page cache (that copy was the
   * largest cost of a sequential write). Anything else, or a filesystem that refuses O_DIRECT,
   * is written through the page cache; the kernel keeps the two views coherent.
   */
  async #writeFile(dirty: Dirty, data: Buffer, at: number): Promise<void> {
    if (this.#directIo && directIoFits(data, at)) {
      try {
        dirty.direct ??= openFd(this.#dirtyPath(dirty.unit), constants.O_RDWR | constants.O_DIRECT);
        const direct = await dirty.direct.catch((error: unknown) => {
          dirty.direct = null;
          throw error;
        });
        await this.#init.cache.io.write(direct, data, at);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
        this.#directIo = false;
        if (this.#spares) this.#spares.direct = false;
        this.#logger.info('O_DIRECT refused for dirty files: writes use the page cache', { volume: this.volume, error: describe(error) });
      }
    }
    await this.#init.cache.io.write(dirty.fd!, data, at);
  }

  /** Records a completed write's checksum, or gives up on the unit's pieces when it overlaps one. */
  #notePiece(dirty: Dirty, at: number, data: Buffer): void {
    const pieces = dirty.pieces;
    if (!pieces) return;
    const end = at + data.length;
    for (const [offset, piece] of pieces) {
      // Concurrent overlapping writes may land in either order: only a full set of disjoint
      // pieces says what the file holds.
      if (offset < end && at < offset + piece.length) {
        dirty.pieces = null;
        return;
      }
    }
    pieces.set(at, { length: data.length, crc: crc32(data), zero: isZero(data, this.#zeros) });
  }

  /** The unit's checksum from its pieces when they cover it exactly (caller holds it alone). */
  #summed(dirty: Dirty): { crc: number; zero: boolean } | undefined {
    if (!dirty.pieces) return undefined;
    let covered = 0;
    let crc = 0;
    let zero = true;
    for (const offset of [...dirty.pieces.keys()].sort((a, b) => a - b)) {
      const piece = dirty.pieces.get(offset)!;
      if (offset !== covered) return undefined;
      crc = covered === 0 ? piece.crc : crc32Combine(crc, piece.crc, piece.length);
      zero &&= piece.zero;
      covered += piece.length;
    }
    return covered === this.unitSize ? { crc, zero } : undefined;
  }

  /** Closes a unit's descriptors (caller holds the unit alone). */
  async #closeFiles(dirty: Dirty): Promise<void> {
    const { fd, direct } = dirty;
    dirty.fd = null;
    dirty.direct = null;
    if (direct) await closeFd(await direct).catch(() => undefined);
    if (fd !== null) await closeFd(fd);
  }

  /** Gives a unit a local file holding its current contents (caller holds the unit alone). */
  async #materialize(unit: number, existing: Dirty | undefined, whole: boolean): Promise<void> {
    const path = this.#dirtyPath(unit);
    if (existing?.sealed && existing.fd !== null) {
      // The file is an object in the store now: the unit's next version is a new file, whole
      // or a copy, that replaces the name (never the inode, which the object shares).
      const next = whole ? await this.#freshFile(path) : { fd: await replaceWithCopy(path), direct: null };
      await this.#closeFiles(existing);
      existing.fd = next.fd;
      existing.direct = next.direct;
      existing.sealed = false;
      existing.gen++;
      return;
    }
    const base = existing ? undefined : this.#head.get(unit);
    let fd: number;
    let direct: Promise<number> | null = null;
    if (base && !whole) {
      // Copy-on-write: the object stays immutable; the unit's new version starts as its copy.
      if (!(await this.#init.cache.copyTo(base, path))) await writeFile(path, await this.#fetch(base, unit));
      fd = await openFd(path, 'r+');
    } else {
      ({ fd, direct } = await this.#freshFile(path));
    }
    this.#addDirtyBytes(this.unitSize);
    const now = Date.now();
    if (existing) {
      existing.fd = fd;
      existing.direct = direct;
      existing.gen++;
    } else {
      this.#dirty.set(unit, { unit, fd, gen: 1, committedGen: 0, uploading: false, firstDirty: now, lastWrite: now, written: 0, sealed: false, direct, pieces: new Map() });
    }
  }

  /** An empty unit-size file at `path`, replacing the name only: a spare when one is ready. */
  async #freshFile(path: string): Promise<{ fd: number; direct: Promise<number> | null }> {
    const spare = await this.#spares?.claim(path);
    if (spare) return { fd: spare.fd, direct: spare.direct === null ? null : Promise.resolve(spare.direct) };
    const next = `${path}.next`;
    const fd = await openFd(next, 'w+');
    await truncateFd(fd, this.unitSize);
    await rename(next, path);
    return { fd, direct: null };
  }

  async #discardUnit(unit: number): Promise<void> {
    await this.#locks.exclusive(unit, async () => {
      const dirty = this.#dirty.get(unit);
      const now = Date.now();
      if (dirty) {
        dirty.pieces = new Map();
        if (dirty.fd !== null) {
          await this.#closeFiles(dirty);
          dirty.sealed = false;
          this.#addDirtyBytes(-this.unitSize);
          await unlink(this.#dirtyPath(unit)).catch(() => undefined);
        }
        dirty.gen++;
        dirty.lastWrite = now;
        dirty.written = this.unitSize;
      } else if (this.#head.has(unit)) {
        this.#dirty.set(unit, { unit, fd: null, gen: 1, committedGen: 0, uploading: false, firstDirty: now, lastWrite: now, written: this.unitSize, sealed: false, direct: null, pieces: new Map() });
      }
    });
  }

  /** Backpressure before a write dirties one more unit: delay past the soft limit, block past the hard one. */
  async #admit(): Promise<void> {
    if (this.#dirtyBytes < this.#options.softDirtyBytes) return;
    this.#stats.throttled++;
    this.syncOnce();
    const { softDirtyBytes: soft, hardDirtyBytes: hard } = this.#options;
    if (this.#dirtyBytes < hard) {
      const delay = 1 + Math.floor((20 * (this.#dirtyBytes - soft)) / Math.max(1, hard - soft));
      await new Promise((resolve) => setTimeout(resolve, delay));
      return;
    }
    const deadline = Date.now() + this.#options.flushTimeoutMs;
    while (this.#dirtyBytes >= hard) {
      this.#checkWritable();
      if (Date.now() > deadline) {
        throw new StorageError('ERR_STORE_UNAVAILABLE', `volume ${this.volume}: write blocked on a full dirty set: ${describe(this.#lastError)}`, { fields: { volume: this.volume } });
      }
      this.syncOnce();
      await this.#waitForChange();
    }
  }

  async #upload(dirty: Dirty): Promise<void> {
    dirty.uploading = true;
    this.#uploads++;
    const round = this.#retryRound;
    try {
      const body = this.#buffers.pop() ?? Buffer.allocUnsafe(this.unitSize);
      let object: string | null = null;
      let gen: number;
      let sealed: string | undefined;
      try {
        let known: number | undefined;
        const empty = await this.#locks.exclusive(dirty.unit, async () => {
          gen = dirty.gen;
          if (dirty.fd === null) return true;
          const summed = this.#linkable ? this.#summed(dirty) : undefined;
          if (summed?.zero) return true;
          if (summed) {
            known = summed.crc;
          } else {
            await this.#init.cache.io.read(dirty.fd, body, 0);
            if (isZero(body, this.#zeros)) return true;
          }
          if (this.#linkable) {
            // A private name for this version of the file: a write after the lock is released
            // replaces the unit's file (see #materialize) but never changes this one.
            sealed = `${this.#dirtyPath(dirty.unit)}.up${gen}`;
            await unlink(sealed).catch(() => undefined);
            await link(this.#dirtyPath(dirty.unit), sealed);
            dirty.sealed = true;
          }
          return false;
        });
        if (!empty) {
          object = known === undefined ? newObjectId(body) : objectIdWithChecksum(known);
          await this.#store(objectKey(object), known === undefined ? body : undefined, sealed);
          this.#stats.uploaded++;
          this.#stats.uploadedBytes += body.length;
        }
      } finally {
        this.#buffers.push(body);
        if (sealed) await unlink(sealed).catch(() => undefined);
      }
      // The slot frees as soon as the object is stored; the unit stays `uploading` until its
      // map change is committed, so commits batch while the next uploads already run.
      this.#uploads--;
      this.#pending.push({ dirty, gen: gen!, object });
      this.#committing ??= this.#commitLoop().finally(() => { this.#committing = undefined; });
      this.syncOnce();
    } catch (error) {
      dirty.uploading = false;
      this.#uploads--;
      this.#failed('upload failed', error, { unit: dirty.unit }, round);
      this.#notify();
    }
  }

  /**
   * Stores an object: by hard link from `file` when the store is on this filesystem (the bytes
   * are written to disk once, not copied), otherwise from `body`.
   */
  async #store(key: string, body: Buffer | undefined, file: string | undefined): Promise<void> {
    const store = this.#init.store;
    if (file && store.putFile) {
      try {
        await store.putFile(key, file);
        return;
      } catch (error) {
        if ((error as { fields?: { errno?: string } }).fields?.errno !== 'EXDEV') throw error;
        this.#linkable = false;
        this.#logger.info('object store is on another filesystem: uploads copy', { volume: this.volume });
      }
    }
    // The sealed file never changes, so it can be read here, outside the unit's lock.
    await store.put(key, body ?? (await readFile(file!)));
  }

  async #commitLoop(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending;
      this.#pending = [];
      const round = this.#retryRound;
      try {
        // Linked objects become durable together, before the map names any of them.
        await this.#init.store.syncFiles?.();
        await this.#init.metadata!.commit([{ op: 'map', units: batch.map((item) => [item.dirty.unit, item.object] as [number, string | null]) }]);
      } catch (error) {
        if (hasCode(error, 'ERR_LEASE_LOST')) {
          this.#fenced = error as StorageError;
          this.#logger.error('volume fenced: writes now fail', { volume: this.volume, error: describe(error) });
          for (const item of [...batch, ...this.#pending]) item.dirty.uploading = false;
          this.#pending = [];
          this.#notify();
          return;
        }
        this.#failed('commit failed', error, { units: batch.length }, round);
        this.#pending = [...batch, ...this.#pending];
        if (this.#stopped) return;
        // Back off, but wake at once when a flush clears the back-off (fsync retries at once).
        await this.#waitForChange();
        while (!this.#stopped && Date.now() < this.#backoffUntil) await this.#waitForChange();
        continue;
      }
      this.#failures = 0;
      this.#stats.commits++;
      for (const item of batch) {
        if (item.object) this.#head.set(item.dirty.unit, item.object);
        else this.#head.delete(item.dirty.unit);
        item.dirty.committedGen = Math.max(item.dirty.committedGen, item.gen);
      }
      await Promise.all(batch.map((item) => this.#finish(item)));
      this.#notify();
    }
  }

  /** After a commit: a unit not written since its snapshot becomes clean (its file joins the cache). */
  async #finish(item: Uploaded): Promise<void> {
    const unit = item.dirty.unit;
    try {
      await this.#locks.exclusive(unit, async () => {
        const dirty = item.dirty;
        dirty.uploading = false;
        if (dirty.gen !== item.gen || this.#dirty.get(unit) !== dirty) return;
        this.#dirty.delete(unit);
        this.#init.db?.clearDirtyUnits(this.volume, [unit]);
        if (dirty.fd === null) return;
        await this.#closeFiles(dirty);
        this.#addDirtyBytes(-this.unitSize);
        if (item.object) await this.#init.cache.adopt(item.object, this.#dirtyPath(unit), this.unitSize);
        else await unlink(this.#dirtyPath(unit));
      });
    } catch (error) {
      this.#logger.warn('finishing an upload failed', { volume: this.volume, unit, error: describe(error) });
    }
  }

  /** Relaxed fsync: dirty files to disk and the dirty set recorded, nothing waits on the store. */
  async #syncLocal(): Promise<void> {
    const units = [...this.#dirty.keys()];
    await Promise.all(units.map((unit) => this.#locks.shared(unit, async () => {
      const dirty = this.#dirty.get(unit);
      if (dirty?.fd != null) await syncFd(dirty.fd);
    })));
    this.#init.db?.setDirtyUnits(this.volume, this.#dirty.keys());
  }

  #failed(message: string, error: unknown, fields: Record<string, unknown>, round: number): void {
    this.#lastError = error;
    this.#failures++;
    const delay = Math.min(5000, 50 * 2 ** Math.min(this.#failures, 7));
    // An attempt that began before the latest flush asked for a fresh try says nothing about
    // the store now: it must not push that flush's retry past its deadline.
    if (round === this.#retryRound) this.#backoffUntil = Date.now() + delay;
    // Rate-limited: the first failure and then every tenth.
    if (this.#failures === 1 || this.#failures % 10 === 0) {
      this.#logger.warn(message, { volume: this.volume, failures: this.#failures, retryMs: delay, error: describe(error), ...fields, ...(error as { fields?: object }).fields });
    }
  }
}

/**
 * Replaces the file at `path` by a copy of itself (a new inode under the same name, so other
 * links to the old one never see later writes) and opens it for writing.
 */
async function replaceWithCopy(path: string): Promise<number> {
  await copyFile(path, `${path}.next`);
  await rename(`${path}.next`, path);
  return openFd(path, 'r+');
}

/**
 * Waits for every part of a request before failing with the first error: a part still running
 * after the reply would use a request buffer the reader thread already reuses.
 */
async function settle(parts: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(parts);
  for (const result of results) if (result.status === 'rejected') throw result.reason;
}
