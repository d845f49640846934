import { close, constants, open } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { directIoFits } from '../aligned.ts';
import type { Logger } from '../../logger.ts';
import { AdaptiveIo } from './io.ts';

const openFd = promisify(open);
const closeFd = promisify(close);
/** Reads at least this large, into page-aligned memory, bypass the page cache (see `read`). */
const DIRECT_READ_MIN = 128 * 1024;

/** Options of the local object cache. */
export interface CacheInit {
  /** Directory of cached objects (one file per object). */
  dir: string;
  /** Bytes the cache may use, dirty units included. */
  budgetBytes: number;
  logger: Logger;
  /** File I/O shared with the devices. @default a new AdaptiveIo */
  io?: AdaptiveIo;
  /** Evict when usage passes this fraction of the budget. @default 0.9 */
  highWatermark?: number;
  /** Evict down to this fraction. @default 0.75 */
  lowWatermark?: number;
  /** Open file descriptors kept for hot objects. @default 4096 */
  maxOpenFiles?: number;
}

/** Documented defaults of {@link CacheInit}. */
export const CACHE_DEFAULTS = { highWatermark: 0.9, lowWatermark: 0.75, maxOpenFiles: 4096 } as const;

/** Counters of the cache. */
export interface CacheStats {
  objects: number;
  bytes: number;
  pinnedBytes: number;
  hits: number;
  misses: number;
  evictions: number;
  /** File calls answered synchronously, on the threadpool, and slow synchronous ones. */
  io: { sync: number; async: number; slow: number };
}

interface Entry {
  size: number;
  fd?: Promise<number>;
  /** An O_DIRECT descriptor of the same file, opened on the first large aligned read. */
  direct?: Promise<number>;
  refs: number;
  evicted: boolean;
}

/**
 * The local read-through cache ("NVMe"), keyed by object id: objects are immutable, so an entry
 * stays valid across checkpoints, clones and volumes. Clean objects are evicted least recently
 * used when usage (including the dirty units that devices pin) passes the high watermark, down to
 * the low one. After a crash of the machine (new boot id without a clean stop) the directory is
 * wiped, because files renamed into place may have lost their data; after a process crash the
 * page cache kept them intact.
 */
export class ObjectCache {
  readonly #init: CacheInit;
  readonly #io: AdaptiveIo;
  /** Insertion order is recency order: the first entry is the least recently used. */
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #pinned = 0;
  #open = 0;
  /** Large aligned reads use O_DIRECT until the filesystem refuses it. */
  #directReads = true;
  #evicting: Promise<void> | undefined;
  readonly #shards = new Set<string>();
  readonly #stats = { hits: 0, misses: 0, evictions: 0 };

  constructor(init: CacheInit) {
    this.#init = init;
    this.#io = init.io ?? new AdaptiveIo();
  }

  /** The file I/O the cache uses (devices share it). */
  get io(): AdaptiveIo {
    return this.#io;
  }

  /** Loads the directory's contents (oldest first) or wipes it after an unclean machine stop. */
  async start(): Promise<void> {
    await mkdir(this.#init.dir, { recursive: true });
    const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
    const marker = join(this.#init.dir, '.state');
    const state = await readFile(marker, 'utf8').then((text) => JSON.parse(text) as { bootId: string; clean: boolean }, () => undefined);
    if (state && !state.clean && state.bootId !== bootId) {
      this.#init.logger.warn('cache wiped after an unclean machine stop', { dir: this.#init.dir });
      for (const name of await readdir(this.#init.dir)) if (name !== '.state') await rm(join(this.#init.dir, name), { recursive: true, force: true });
    }
    const found: Array<{ id: string; size: number; time: number }> = [];
    for (const shard of await readdir(this.#init.dir)) {
      if (shard.length !== 2) continue;
      for (const name of await readdir(join(this.#init.dir, shard))) {
        const path = join(this.#init.dir, shard, name);
        if (name.includes('.tmp')) {
          await unlink(path).catch(() => undefined);
          continue;
        }
        const info = await stat(path).catch(() => undefined);
        if (info) found.push({ id: name, size: info.size, time: info.mtimeMs });
      }
    }
    found.sort((a, b) => a.time - b.time);
    for (const { id, size } of found) this.#add(id, size);
    await writeFile(marker, JSON.stringify({ bootId, clean: false }));
    this.#maybeEvict();
  }

  /** Marks a clean stop and closes cached file descriptors. */
  async stop(): Promise<void> {
    await this.#evicting;
    for (const entry of this.#entries.values()) await this.#closeFd(entry);
    const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
    await writeFile(join(this.#init.dir, '.state'), JSON.stringify({ bootId, clean: true })).catch(() => undefined);
  }

  /** True when object `id` is cached. */
  has(id: string): boolean {
    return this.#entries.has(id);
  }

  /** Path of object `id` in the cache directory. */
  path(id: string): string {
    return join(this.#init.dir, id.slice(0, 2), id);
  }

  /** Reads `into.length` bytes at `offset` of object `id`; false when it is not cached. */
  async read(id: string, offset: number, into: Buffer): Promise<boolean> {
    const entry = this.#entries.get(id);
    if (!entry) {
      this.#stats.misses++;
      return false;
    }
    this.#stats.hits++;
    this.#touch(id, entry);
    entry.refs++;
    try {
      await this.#io.read(await this.#fdFor(id, entry, offset, into), into, offset);
      return true;
    } catch (error) {
      // Evicted between lookup and open: a miss after all.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#forget(id);
        return false;
      }
      throw error;
    } finally {
      entry.refs--;
      if (entry.evicted && entry.refs === 0) await this.#closeFd(entry);
    }
  }

  /** Copies object `id` to `dest` (a unit becoming dirty); false when it is not cached. */
  async copyTo(id: string, dest: string): Promise<boolean> {
    const entry = this.#entries.get(id);
    if (!entry) return false;
    this.#touch(id, entry);
    try {
      await copyFile(this.path(id), dest);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#forget(id);
        return false;
      }
      throw error;
    }
  }

  /** Stores a verified object's bytes (write to a temporary name, then rename). */
  async insert(id: string, data: Buffer): Promise<void> {
    if (this.#entries.has(id)) return;
    const path = this.path(id);
    const temp = `${path}.tmp${randomBytes(4).toString('hex')}`;
    await this.#shard(id);
    await writeFile(temp, data);
    await rename(temp, path);
    this.#add(id, data.length);
    this.#maybeEvict();
  }

  /** Moves a file holding object `id`'s bytes (a just-uploaded unit) into the cache. */
  async adopt(id: string, from: string, size: number): Promise<void> {
    await this.#shard(id);
    await rename(from, this.path(id));
    this.#add(id, size);
    this.#maybeEvict();
  }

  /** Adds `bytes` (may be negative) to the dirty bytes counted against the budget. */
  pin(bytes: number): void {
    this.#pinned += bytes;
    if (bytes > 0) this.#maybeEvict();
  }

  /** Counters. */
  stats(): CacheStats {
    return { objects: this.#entries.size, bytes: this.#bytes, pinnedBytes: this.#pinned, ...this.#stats, io: { ...this.#io.counts } };
  }

  /** Evicts now until usage is under the low watermark (tests drive this directly). */
  evictOnce(): Promise<void> {
    this.#evicting ??= this.#evict().finally(() => { this.#evicting = undefined; });
    return this.#evicting;
  }

  async #shard(id: string): Promise<void> {
    const shard = id.slice(0, 2);
    if (this.#shards.has(shard)) return;
    await mkdir(join(this.#init.dir, shard), { recursive: true });
    this.#shards.add(shard);
  }

  #add(id: string, size: number): void {
    if (this.#entries.has(id)) return;
    this.#entries.set(id, { size, refs: 0, evicted: false });
    this.#bytes += size;
  }

  #touch(id: string, entry: Entry): void {
    this.#entries.delete(id);
    this.#entries.set(id, entry);
  }

  #forget(id: string): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#entries.delete(id);
    this.#bytes -= entry.size;
    entry.evicted = true;
    if (entry.refs === 0) void this.#closeFd(entry);
  }

  #maybeEvict(): void {
    const high = this.#init.budgetBytes * (this.#init.highWatermark ?? CACHE_DEFAULTS.highWatermark);
    if (this.#bytes + this.#pinned > high) void this.evictOnce();
  }

  async #evict(): Promise<void> {
    const low = this.#init.budgetBytes * (this.#init.lowWatermark ?? CACHE_DEFAULTS.lowWatermark);
    while (this.#bytes + this.#pinned > low && this.#entries.size > 0) {
      const id = this.#entries.keys().next().value as string;
      this.#forget(id);
      this.#stats.evictions++;
      await unlink(this.path(id)).catch(() => undefined);
    }
  }

  /**
   * The descriptor a read uses. A large page-aligned read goes through O_DIRECT: the disk fills
   * the FUSE reply buffer itself, where a buffered read would copy every byte out of the page
   * cache (and fill the page cache with data the loop device above already caches). Small reads
   * keep the page cache, which serves repeated random reads in microseconds.
   */
  #fdFor(id: string, entry: Entry, offset: number, into: Buffer): Promise<number> {
    if (this.#directReads && into.length >= DIRECT_READ_MIN && directIoFits(into, offset)) {
      entry.direct ??= this.#openFd(id, constants.O_RDONLY | constants.O_DIRECT).catch((error: NodeJS.ErrnoException) => {
        entry.direct = undefined;
        if (error.code !== 'EINVAL') throw error;
        this.#directReads = false;
        this.#init.logger.info('O_DIRECT refused for cache files: reads use the page cache', { dir: this.#init.dir });
        return this.#fdFor(id, entry, offset, into);
      });
      return entry.direct;
    }
    entry.fd ??= this.#openFd(id, constants.O_RDONLY);
    return entry.fd;
  }

  async #openFd(id: string, flags: number): Promise<number> {
    const fd = await openFd(this.path(id), flags);
    this.#open++;
    if (this.#open > (this.#init.maxOpenFiles ?? CACHE_DEFAULTS.maxOpenFiles)) this.#trimFds();
    return fd;
  }

  #trimFds(): void {
    // Close descriptors of the least recently used idle entries.
    for (const entry of this.#entries.values()) {
      if (this.#open <= (this.#init.maxOpenFiles ?? CACHE_DEFAULTS.maxOpenFiles) / 2) break;
      if ((entry.fd || entry.direct) && entry.refs === 0) void this.#closeFd(entry);
    }
  }

  async #closeFd(entry: Entry): Promise<void> {
    const fds = [entry.fd, entry.direct].filter((fd) => fd !== undefined);
    entry.fd = undefined;
    entry.direct = undefined;
    this.#open -= fds.length;
    await Promise.all(fds.map((fd) => fd.then((n) => closeFd(n)).catch(() => undefined)));
  }
}
