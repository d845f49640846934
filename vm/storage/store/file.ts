import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, open, readdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { StorageError } from '../errors.ts';
import type { ObjectInfo, ObjectStore, PutOptions, StoredObject } from './store.ts';

const TEMP = '.tmp-';
const LOCK = '.lock-';

/**
 * Objects as files under one directory (`file:///abs/dir`): the embedded default, also shareable
 * by several peers on one machine. A put writes a temporary file, fsyncs it, renames it into place
 * and fsyncs the directory, so an acknowledged object survives a crash; `putFile` links a file in
 * and leaves the syncs to `syncFiles`, which many objects share. Conditional puts are
 * atomic: If-None-Match uses link(2), If-Match a lock directory around compare-and-rename.
 */
export class FileObjectStore implements ObjectStore {
  readonly url: string;
  readonly conditionalWrites = true;
  readonly #root: string;
  readonly #dirs = new Set<string>();
  readonly #dirSyncs = new Map<string, Coalesced>();
  /** Objects `putFile` linked since the last `syncFiles`, and their directories. */
  #unsynced = { files: new Set<string>(), dirs: new Set<string>() };
  readonly #fileSync = new Coalesced(() => this.#syncUnsynced());

  constructor(root: string) {
    this.#root = root;
    this.url = `file://${root}`;
  }

  async get(key: string): Promise<StoredObject> {
    const path = this.#path(key);
    try {
      const handle = await open(path, 'r');
      try {
        const info = await handle.stat();
        const body = await handle.readFile();
        return { body, etag: etagOf(info) };
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw mapError(error, 'get', key);
    }
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<{ etag: string }> {
    const { path, dir, temp } = this.#target(key);
    try {
      await this.#ensureDir(dir);
      const handle = await open(temp, 'wx');
      try {
        await handle.writeFile(body);
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (options.ifNoneMatch) {
        // link(2) fails if the name exists: an atomic create-if-absent.
        await link(temp, path).catch((error: NodeJS.ErrnoException) => {
          if (error.code === 'EEXIST') throw new StorageError('ERR_PRECONDITION_FAILED', `put ${key}: exists`, { fields: { key } });
          throw error;
        });
        await unlink(temp);
      } else if (options.ifMatch !== undefined) {
        await this.#locked(path, async () => {
          const current = await stat(path).then(etagOf, () => undefined);
          if (current !== options.ifMatch) throw new StorageError('ERR_PRECONDITION_FAILED', `put ${key}: etag changed`, { fields: { key } });
          await rename(temp, path);
        });
      } else {
        await rename(temp, path);
      }
      await this.#syncDir(dir);
      return { etag: etagOf(await stat(path)) };
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw mapError(error, 'put', key);
    }
  }

  /**
   * A put without a copy: the file is hard-linked under a temporary name and renamed into place.
   * Its data and the directory entry are synced later, for many objects at once, by `syncFiles`.
   */
  async putFile(key: string, source: string): Promise<{ etag: string; size: number }> {
    const { path, dir, temp } = this.#target(key);
    try {
      await this.#ensureDir(dir);
      await link(source, temp);
      await rename(temp, path);
      this.#unsynced.files.add(path);
      this.#unsynced.dirs.add(dir);
      const info = await stat(path);
      return { etag: etagOf(info), size: info.size };
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EXDEV' || code === 'EPERM' || code === 'EMLINK') {
        throw new StorageError('ERR_STORE_UNAVAILABLE', `put ${key}: cannot link ${source}: ${code}`, { cause: error, fields: { key, errno: 'EXDEV' } });
      }
      throw mapError(error, 'put', key);
    }
  }

  /**
   * Makes every object `putFile` stored before the call durable: the files' data, then their
   * directories. Many objects share these syncs (the filesystem's journal commits once for all
   * of them) instead of paying a commit and a disk cache flush each.
   */
  syncFiles(): Promise<void> {
    return this.#fileSync.run();
  }

  async #syncUnsynced(): Promise<void> {
    const { files, dirs } = this.#unsynced;
    if (files.size === 0 && dirs.size === 0) return;
    this.#unsynced = { files: new Set(), dirs: new Set() };
    try {
      // A file gone since (collected, or its volume deleted) needs no durability.
      await Promise.all([...files].map((path) => syncFile(path, 'data').catch(ignoreMissing)));
      await Promise.all([...dirs].map((dir) => this.#syncDir(dir)));
    } catch (error) {
      for (const path of files) this.#unsynced.files.add(path);
      for (const dir of dirs) this.#unsynced.dirs.add(dir);
      throw mapError(error, 'sync', [...files][0] ?? [...dirs][0]!);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.#path(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw mapError(error, 'delete', key);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // Walk from the deepest directory the prefix names completely.
    const slash = prefix.lastIndexOf('/');
    const base = slash >= 0 ? prefix.slice(0, slash) : '';
    const found: ObjectInfo[] = [];
    await this.#walk(join(this.#root, base), prefix, found);
    found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    yield* found;
  }

  async close(): Promise<void> {
    // Nothing to release.
  }

  async #walk(dir: string, prefix: string, out: ObjectInfo[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw mapError(error, 'list', prefix);
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP) || entry.name.startsWith(LOCK)) continue;
      const path = join(dir, entry.name);
      const key = relative(this.#root, path);
      if (entry.isDirectory()) {
        if (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`)) await this.#walk(path, prefix, out);
      } else if (key.startsWith(prefix)) {
        const info = await lstat(path).catch(() => undefined);
        if (info) out.push({ key, size: info.size, modified: info.mtimeMs });
      }
    }
  }

  /**
   * fsync of a directory, coalesced: many objects landing in one directory share one fsync.
   */
  #syncDir(dir: string): Promise<void> {
    let sync = this.#dirSyncs.get(dir);
    if (!sync) this.#dirSyncs.set(dir, (sync = new Coalesced(() => syncFile(dir, 'all'))));
    return sync.run();
  }

  /** The object's path, its directory and a fresh temporary name next to it. */
  #target(key: string): { path: string; dir: string; temp: string } {
    const path = this.#path(key);
    const dir = dirname(path);
    return { path, dir, temp: join(dir, `${TEMP}${randomBytes(6).toString('hex')}`) };
  }

  async #ensureDir(dir: string): Promise<void> {
    if (this.#dirs.has(dir)) return;
    await mkdir(dir, { recursive: true });
    this.#dirs.add(dir);
  }

  #path(key: string): string {
    if (key.startsWith('/') || key.split('/').some((part) => part === '..' || part === '' || part.startsWith(TEMP) || part.startsWith(LOCK))) {
      throw new StorageError('ERR_STORAGE_CONFIG', `bad object key ${JSON.stringify(key)}`);
    }
    return join(this.#root, key);
  }

  async #locked<T>(path: string, fn: () => Promise<T>): Promise<T> {
    const lock = join(dirname(path), `${LOCK}${relative(dirname(path), path)}`);
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(lock);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        // A holder that died leaves its lock behind; locks are held for milliseconds.
        const info = await stat(lock).catch(() => undefined);
        if (info && Date.now() - info.mtimeMs > 10_000) await rmdir(lock).catch(() => undefined);
        if (attempt > 2000) throw new StorageError('ERR_STORE_UNAVAILABLE', `lock ${lock} stays taken`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    try {
      return await fn();
    } finally {
      await rmdir(lock).catch(() => undefined);
    }
  }
}

function etagOf(info: { ino: number; mtimeMs: number; size: number }): string {
  return `${info.ino.toString(16)}-${Math.round(info.mtimeMs * 1000).toString(16)}-${info.size.toString(16)}`;
}

/** fsync (`all`) or fdatasync (`data`) of the file or directory at `path`. */
async function syncFile(path: string, what: 'all' | 'data'): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await (what === 'all' ? handle.sync() : handle.datasync());
  } finally {
    await handle.close();
  }
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== 'ENOENT') throw error;
}

/**
 * Runs a task so that callers arriving before a run has started share that run (it will cover
 * whatever they did before calling); a run starts only after the previous one ended.
 */
class Coalesced {
  readonly #task: () => Promise<void>;
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;

  constructor(task: () => Promise<void>) {
    this.#task = task;
  }

  run(): Promise<void> {
    this.#next ??= (async () => {
      await this.#running?.catch(() => undefined);
      this.#next = undefined;
      const running = this.#task();
      this.#running = running;
      try {
        await running;
      } finally {
        if (this.#running === running) this.#running = undefined;
      }
    })();
    return this.#next;
  }
}

function mapError(error: unknown, op: string, key: string): Error {
  if (error instanceof StorageError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' && op === 'get') return new StorageError('ERR_OBJECT_NOT_FOUND', `get ${key}: not found`, { cause: error, fields: { key } });
  return new StorageError('ERR_STORE_UNAVAILABLE', `${op} ${key}: ${(error as Error).message}`, { cause: error, fields: { key } });
}

