import { close, constants, fdatasync, fstat, ftruncate, open } from 'node:fs';
import { copyFile, link, mkdir, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { directIoFits } from '../aligned.ts';
import { describe } from '../errors.ts';
import type { Logger } from '../../logger.ts';
import type { ObjectCache } from './cache.ts';
import type { MetaDb } from './meta-db.ts';
import { crc32Combine, isZero } from './objects.ts';
import { UnitLocks } from './rwlock.ts';
import { SpareFiles } from './spare-files.ts';

/** Spare unit files kept ready per writable volume (see SpareFiles). */
const SPARE_FILES = 8;
const openFd = promisify(open);
const closeFd = promisify(close);
const truncateFd = promisify(ftruncate);
const syncFd = promisify(fdatasync);
const statFd = promisify(fstat);

/** A unit changed since its last commit: its local file and what write-back needs to know of it. */
export interface DirtyUnit {
  readonly unit: number;
  /** Open descriptor of the unit's file; null for a unit that is all zeros (punched). */
  fd: number | null;
  /** Bumped by every change; an upload snapshots it. */
  gen: number;
  /** Generation of the last committed upload. */
  committedGen: number;
  /** Set by write-back from the start of an upload until its map change is committed (or it fails). */
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

/** A dirty unit's version as an upload takes it (see {@link DirtyUnits.snapshot}). */
export interface UnitSnapshot {
  /** The unit's generation at the snapshot. */
  gen: number;
  /** The unit reads as all zeros: it needs no object. */
  empty: boolean;
  /** The contents' CRC-32C when known from the pieces; otherwise the contents are in the body. */
  known: number | undefined;
  /** A private hard link to this version of the file, when uploads link; the caller removes it. */
  sealed: string | undefined;
}

/** What the dirty units are made of. */
export interface DirtyUnitsInit {
  volume: string;
  unitSize: number;
  /** Directory of the unit files. */
  dir: string;
  /** The committed head map (unit -> object id), kept current by write-back. */
  head: ReadonlyMap<number, string>;
  cache: ObjectCache;
  logger: Logger;
  /** Local database recording the dirty set (relaxed mode). */
  db?: MetaDb;
  /** Uploads hard-link unit files into the store (it offers `putFile`). */
  linkable: boolean;
  /** Fetches a clean unit's object (a copy-on-write base the cache no longer holds). */
  fetch(object: string, unit: number): Promise<Buffer>;
  /** Backpressure before a write dirties one more unit. */
  admit(): Promise<void>;
  /** Throws when the device takes no more writes (read-only, fenced or stopped). */
  checkWritable(): void;
}

/**
 * The dirty units of a device and their local files: a unit is written in place in its own
 * file (copy-on-write from its object, or a fresh file when written whole), through O_DIRECT
 * when the request allows, with per-write checksums so an upload can name the object without
 * reading the file back. An upload snapshots a unit by hard-linking its file (sealing it: the
 * next write replaces the file by a copy); a committed unit's file joins the cache. Per-unit
 * locks order all of this: data reads and writes share a unit, state changes take it alone.
 */
export class DirtyUnits {
  /**
   * Uploads hard-link unit files into the store while this holds; write-back clears it when
   * the store turns out to be on another filesystem. Writes record their pieces only then.
   */
  linkable: boolean;
  readonly #init: DirtyUnitsInit;
  readonly #unitSize: number;
  readonly #units = new Map<number, DirtyUnit>();
  readonly #locks = new UnitLocks();
  readonly #zeros: Buffer;
  #bytes = 0;
  /** Page-aligned writes use O_DIRECT until the filesystem refuses it. */
  #directIo = true;
  /** Empty files for units that start afresh; none on a read-only device. */
  #spares: SpareFiles | undefined;

  constructor(init: DirtyUnitsInit) {
    this.#init = init;
    this.#unitSize = init.unitSize;
    this.#zeros = Buffer.alloc(init.unitSize);
    this.linkable = init.linkable;
  }

  /** Number of dirty units. */
  get count(): number {
    return this.#units.size;
  }

  /** Bytes of local unit files (pinned in the cache's budget). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether `unit` is dirty. */
  has(unit: number): boolean {
    return this.#units.has(unit);
  }

  /** The dirty state of `unit`; write-back compares it by identity to see a unit replaced. */
  get(unit: number): DirtyUnit | undefined {
    return this.#units.get(unit);
  }

  /** The dirty units, oldest first (the order they became dirty). */
  values(): IterableIterator<DirtyUnit> {
    return this.#units.values();
  }

  /**
   * Prepares the directory for a writable device: with `adopt`, takes over the units the
   * database records dirty (a previous run's, same epoch); otherwise starts empty. Then makes
   * spare files ready.
   */
  async open(adopt: boolean): Promise<void> {
    const { dir, db } = this.#init;
    const units = adopt ? db!.dirtyUnits(this.#init.volume) : [];
    if (!adopt) {
      await rm(dir, { recursive: true, force: true });
      db?.setDirtyUnits(this.#init.volume, []);
    }
    await mkdir(dir, { recursive: true });
    // Files of units that are not recorded dirty (finished uploads interrupted by a crash) go.
    const keep = new Set(units.map(String));
    for (const name of await readdir(dir)) if (!keep.has(name)) await unlink(join(dir, name)).catch(() => undefined);
    const now = Date.now();
    for (const unit of units) {
      const fd = await this.#openPrivate(this.#path(unit)).catch(() => null);
      this.#units.set(unit, { unit, fd, gen: 1, committedGen: 0, uploading: false, firstDirty: now, lastWrite: 0, written: 0, sealed: false, direct: null, pieces: new Map() });
      if (fd !== null) this.#addBytes(this.#unitSize);
    }
    if (units.length > 0) this.#init.logger.info('adopted dirty units', { volume: this.#init.volume, units: units.length });
    this.#spares = new SpareFiles(dir, this.#unitSize, SPARE_FILES);
  }

  /** Closes every unit's files and the spares, and releases the pinned bytes; the files stay. */
  async close(): Promise<void> {
    for (const dirty of this.#units.values()) {
      await this.#closeFiles(dirty).catch(() => undefined);
    }
    await this.#spares?.close();
    this.#init.cache.pin(-this.#bytes);
    this.#bytes = 0;
  }

  /** Whether `unit` holds anything but zeros, dirty or committed. */
  hasData(unit: number): boolean {
    const dirty = this.#units.get(unit);
    return dirty ? dirty.fd !== null : this.#init.head.has(unit);
  }

  /**
   * Fills `out` from `at` of a dirty unit's file; false when the unit is not dirty (any more),
   * and the caller reads its committed object.
   */
  read(unit: number, at: number, out: Buffer): Promise<boolean> {
    return this.#locks.shared(unit, async () => {
      const dirty = this.#units.get(unit);
      if (!dirty) return false;
      if (dirty.fd === null) out.fill(0);
      else await this.#init.cache.io.read(dirty.fd, out, at);
      return true;
    });
  }

  /** Writes `data` at `at` of `unit`, first giving the unit a writable file of its own. */
  async write(unit: number, at: number, data: Buffer): Promise<void> {
    for (;;) {
      const dirty = this.#units.get(unit);
      if (!dirty || dirty.fd === null || dirty.sealed) {
        if (!dirty) await this.#init.admit();
        await this.#locks.exclusive(unit, async () => {
          const again = this.#units.get(unit);
          if (again && again.fd !== null && !again.sealed) return;
          this.#init.checkWritable();
          await this.#materialize(unit, again, at === 0 && data.length === this.#unitSize);
        });
      }
      const written = await this.#locks.shared(unit, async () => {
        const current = this.#units.get(unit);
        if (!current || current.fd === null || current.sealed) return false;
        await this.#writeFile(current, data, at);
        if (this.linkable) this.#notePiece(current, at, data);
        current.gen++;
        current.lastWrite = Date.now();
        current.written = Math.min(this.#unitSize, current.written + data.length);
        return true;
      });
      if (written) return;
    }
  }

  /** Writes `length` zeros at `at` of `unit` (part of a discard). */
  zero(unit: number, at: number, length: number): Promise<void> {
    return this.write(unit, at, this.#zeros.subarray(0, length));
  }

  /** Makes a whole unit read as zeros: its file goes, and the change is dirty until committed. */
  async discard(unit: number): Promise<void> {
    await this.#locks.exclusive(unit, async () => {
      const dirty = this.#units.get(unit);
      const now = Date.now();
      if (dirty) {
        dirty.pieces = new Map();
        if (dirty.fd !== null) {
          await this.#closeFiles(dirty);
          dirty.sealed = false;
          this.#addBytes(-this.#unitSize);
          await unlink(this.#path(unit)).catch(() => undefined);
        }
        dirty.gen++;
        dirty.lastWrite = now;
        dirty.written = this.#unitSize;
      } else if (this.#init.head.has(unit)) {
        this.#units.set(unit, { unit, fd: null, gen: 1, committedGen: 0, uploading: false, firstDirty: now, lastWrite: now, written: this.#unitSize, sealed: false, direct: null, pieces: new Map() });
      }
    });
  }

  /** Relaxed fsync: dirty files to disk and the dirty set recorded, nothing waits on the store. */
  async syncLocal(): Promise<void> {
    const units = [...this.#units.keys()];
    await Promise.all(units.map((unit) => this.#locks.shared(unit, async () => {
      const dirty = this.#units.get(unit);
      if (dirty?.fd != null) await syncFd(dirty.fd);
    })));
    this.#init.db?.setDirtyUnits(this.#init.volume, this.#units.keys());
  }

  /**
   * Takes the unit's current version for an upload, holding it alone: its generation, whether
   * it is all zeros, and either its checksum (from the pieces) or its contents read into
   * `body`. While uploads link, the file is sealed and a private link to this version made.
   */
  async snapshot(dirty: DirtyUnit, body: Buffer): Promise<UnitSnapshot> {
    let gen: number;
    let known: number | undefined;
    let sealed: string | undefined;
    try {
      const empty = await this.#locks.exclusive(dirty.unit, async () => {
        gen = dirty.gen;
        if (dirty.fd === null) return true;
        const summed = this.linkable ? this.#summed(dirty) : undefined;
        if (summed?.zero) return true;
        if (summed) {
          known = summed.crc;
        } else {
          await this.#init.cache.io.read(dirty.fd, body, 0);
          if (isZero(body, this.#zeros)) return true;
        }
        if (this.linkable) {
          // A private name for this version of the file: a write after the lock is released
          // replaces the unit's file (see #materialize) but never changes this one.
          sealed = `${this.#path(dirty.unit)}.up${gen}`;
          await unlink(sealed).catch(() => undefined);
          await link(this.#path(dirty.unit), sealed);
          dirty.sealed = true;
        }
        return false;
      });
      return { gen: gen!, empty, known, sealed };
    } catch (error) {
      if (sealed) await unlink(sealed).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Ends an upload whose map change is committed: a unit not written since its snapshot (`gen`)
   * becomes clean, its file joining the cache as `object` (or removed when null).
   */
  async retire(dirty: DirtyUnit, gen: number, object: string | null): Promise<void> {
    const unit = dirty.unit;
    await this.#locks.exclusive(unit, async () => {
      dirty.uploading = false;
      if (dirty.gen !== gen || this.#units.get(unit) !== dirty) return;
      this.#units.delete(unit);
      this.#init.db?.clearDirtyUnits(this.#init.volume, [unit]);
      if (dirty.fd === null) return;
      await this.#closeFiles(dirty);
      this.#addBytes(-this.#unitSize);
      if (object) await this.#init.cache.adopt(object, this.#path(unit), this.#unitSize);
      else await unlink(this.#path(unit));
    });
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

  #path(unit: number): string {
    return join(this.#init.dir, String(unit));
  }

  #addBytes(bytes: number): void {
    this.#bytes += bytes;
    this.#init.cache.pin(bytes);
  }

  /**
   * Writes into a unit's file (caller holds the unit shared). A page-aligned request buffer at a
   * page-aligned offset goes through O_DIRECT: the payload the FUSE reader placed on a page
   * boundary reaches the disk without being copied into the page cache (that copy was the
   * largest cost of a sequential write). Anything else, or a filesystem that refuses O_DIRECT,
   * is written through the page cache; the kernel keeps the two views coherent.
   */
  async #writeFile(dirty: DirtyUnit, data: Buffer, at: number): Promise<void> {
    if (this.#directIo && directIoFits(data, at)) {
      try {
        dirty.direct ??= openFd(this.#path(dirty.unit), constants.O_RDWR | constants.O_DIRECT);
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
        this.#init.logger.info('O_DIRECT refused for dirty files: writes use the page cache', { volume: this.#init.volume, error: describe(error) });
      }
    }
    await this.#init.cache.io.write(dirty.fd!, data, at);
  }

  /** Records a completed write's checksum, or gives up on the unit's pieces when it overlaps one. */
  #notePiece(dirty: DirtyUnit, at: number, data: Buffer): void {
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
  #summed(dirty: DirtyUnit): { crc: number; zero: boolean } | undefined {
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
    return covered === this.#unitSize ? { crc, zero } : undefined;
  }

  /** Closes a unit's descriptors (caller holds the unit alone). */
  async #closeFiles(dirty: DirtyUnit): Promise<void> {
    const { fd, direct } = dirty;
    dirty.fd = null;
    dirty.direct = null;
    if (direct) await closeFd(await direct).catch(() => undefined);
    if (fd !== null) await closeFd(fd);
  }

  /** Gives a unit a local file holding its current contents (caller holds the unit alone). */
  async #materialize(unit: number, existing: DirtyUnit | undefined, whole: boolean): Promise<void> {
    const path = this.#path(unit);
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
    const base = existing ? undefined : this.#init.head.get(unit);
    let fd: number;
    let direct: Promise<number> | null = null;
    if (base && !whole) {
      // Copy-on-write: the object stays immutable; the unit's new version starts as its copy.
      if (!(await this.#init.cache.copyTo(base, path))) await writeFile(path, await this.#init.fetch(base, unit));
      fd = await openFd(path, 'r+');
    } else {
      ({ fd, direct } = await this.#freshFile(path));
    }
    this.#addBytes(this.#unitSize);
    const now = Date.now();
    if (existing) {
      existing.fd = fd;
      existing.direct = direct;
      existing.gen++;
    } else {
      this.#units.set(unit, { unit, fd, gen: 1, committedGen: 0, uploading: false, firstDirty: now, lastWrite: now, written: 0, sealed: false, direct, pieces: new Map() });
    }
  }

  /** An empty unit-size file at `path`, replacing the name only: a spare when one is ready. */
  async #freshFile(path: string): Promise<{ fd: number; direct: Promise<number> | null }> {
    const spare = await this.#spares?.claim(path);
    if (spare) return { fd: spare.fd, direct: spare.direct === null ? null : Promise.resolve(spare.direct) };
    const next = `${path}.next`;
    const fd = await openFd(next, 'w+');
    await truncateFd(fd, this.#unitSize);
    await rename(next, path);
    return { fd, direct: null };
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
