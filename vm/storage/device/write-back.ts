import { readFile, unlink } from 'node:fs/promises';
import { StorageError, describe, hasCode } from '../errors.ts';
import type { Logger } from '../../logger.ts';
import type { ObjectStore } from '../store/store.ts';
import type { DeviceOptions } from './device.ts';
import type { DirtyUnit, DirtyUnits } from './dirty-units.ts';
import type { VolumeMetadata } from './metadata.ts';
import { newObjectId, objectIdWithChecksum, objectKey } from './objects.ts';

/** What write-back is made of. */
export interface WriteBackInit {
  volume: string;
  unitSize: number;
  /** The committed head map (unit -> object id); write-back updates it after each commit. */
  head: Map<number, string>;
  store: ObjectStore;
  /** The metadata writer; absent for a read-only device, which has nothing to write back. */
  metadata?: VolumeMetadata;
  units: DirtyUnits;
  logger: Logger;
  options: Pick<DeviceOptions, 'uploadConcurrency' | 'softDirtyBytes' | 'hardDirtyBytes' | 'settleMs' | 'maxDirtyMs' | 'flushTimeoutMs' | 'intervalMs'>;
}

/** Counters of write-back. */
export interface WriteBackStats {
  uploadsInFlight: number;
  pendingCommits: number;
  uploaded: number;
  uploadedBytes: number;
  commits: number;
  throttled: number;
}

interface Uploaded {
  dirty: DirtyUnit;
  gen: number;
  object: string | null;
}

/**
 * Write-back of a device's dirty units: a loop uploads the units that are due as new objects,
 * with bounded concurrency, and commits their map changes in batches once the objects are
 * durable; a committed unit becomes clean. Failures back off exponentially (up to 5 s) unless a
 * flush asks for a fresh try; a lost lease fences the device. Writes that would grow the dirty
 * set past its limits are delayed or blocked here.
 */
export class WriteBack {
  readonly #init: WriteBackInit;
  readonly #options: WriteBackInit['options'];
  readonly #units: DirtyUnits;
  readonly #readOnly: boolean;
  /** Unit-size buffers reused by uploads (at most `uploadConcurrency` are ever out). */
  readonly #buffers: Buffer[] = [];
  #pending: Uploaded[] = [];
  #committing: Promise<void> | undefined;
  #uploads = 0;
  #urgent = 0;
  #changed = Promise.withResolvers<void>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #fenced: StorageError | undefined;
  #lastError: unknown;
  #backoffUntil = 0;
  /** Counts flushes that cleared the back-off; failures of attempts started before the latest do not set a new one. */
  #retryRound = 0;
  #failures = 0;
  readonly #stats = { uploaded: 0, uploadedBytes: 0, commits: 0, throttled: 0 };

  constructor(init: WriteBackInit) {
    this.#init = init;
    this.#options = init.options;
    this.#units = init.units;
    this.#readOnly = !init.metadata;
  }

  /** Counters. */
  stats(): WriteBackStats {
    return { uploadsInFlight: this.#uploads, pendingCommits: this.#pending.length, ...this.#stats };
  }

  /** Starts the loop's timer, which calls {@link syncOnce} every `intervalMs`. */
  start(): void {
    this.#timer = setInterval(() => this.syncOnce(), this.#options.intervalMs);
    this.#timer.unref();
  }

  /** Throws the fencing error once the lease is lost, ERR_DEVICE_STOPPED once stopped. */
  checkOpen(): void {
    if (this.#fenced) throw this.#fenced;
    if (this.#stopped) throw new StorageError('ERR_DEVICE_STOPPED', `volume ${this.#init.volume}: device stopped`, { fields: { volume: this.#init.volume } });
  }

  /**
   * Resolves once every change made before the call is uploaded and committed to the store
   * (whatever the mode). Fails with ERR_STORE_UNAVAILABLE after `flushTimeoutMs` without success.
   */
  async flush(): Promise<void> {
    if (this.#readOnly) return;
    const targets = [...this.#units.values()].filter((d) => d.gen > d.committedGen).map((d) => [d, d.gen] as const);
    if (targets.length === 0) return;
    this.#urgent++;
    // An explicit flush tries at once rather than waiting out a back-off from earlier failures.
    this.#backoffUntil = 0;
    this.#retryRound++;
    this.notify();
    try {
      const deadline = Date.now() + this.#options.flushTimeoutMs;
      for (;;) {
        if (this.#fenced) throw this.#fenced;
        const left = targets.filter(([d, gen]) => this.#units.get(d.unit) === d && d.committedGen < gen);
        if (left.length === 0) return;
        this.syncOnce();
        if (Date.now() > deadline) {
          throw new StorageError('ERR_STORE_UNAVAILABLE', `volume ${this.#init.volume}: flush timed out with ${left.length} units unsaved: ${describe(this.#lastError)}`, {
            cause: this.#lastError, fields: { volume: this.#init.volume },
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
    if (this.#stopped || this.#fenced || this.#readOnly) return;
    const now = Date.now();
    if (now < this.#backoffUntil) return;
    const pressure = this.#units.bytes > this.#options.softDirtyBytes;
    // The units iterate in the order they became dirty: oldest first.
    for (const dirty of this.#units.values()) {
      if (this.#uploads >= this.#options.uploadConcurrency) break;
      if (dirty.uploading || dirty.gen <= dirty.committedGen) continue;
      // A fully written unit that went quiet (a sequential writer moved on) goes early; a unit
      // written here and there waits for its age limit, since uploading it would only make the
      // next small write copy the whole unit again.
      const settled = dirty.written >= this.#init.unitSize && now - dirty.lastWrite >= this.#options.settleMs;
      const due = this.#urgent > 0 || pressure || settled || now - dirty.firstDirty >= this.#options.maxDirtyMs;
      if (due) void this.#upload(dirty);
    }
  }

  /**
   * Backpressure before a write dirties one more unit: delay past the soft limit, block past
   * the hard one until uploads bring the dirty set back under it (ERR_STORE_UNAVAILABLE after
   * `flushTimeoutMs`).
   */
  async admit(): Promise<void> {
    if (this.#units.bytes < this.#options.softDirtyBytes) return;
    this.#stats.throttled++;
    this.syncOnce();
    const { softDirtyBytes: soft, hardDirtyBytes: hard } = this.#options;
    if (this.#units.bytes < hard) {
      const delay = 1 + Math.floor((20 * (this.#units.bytes - soft)) / Math.max(1, hard - soft));
      await new Promise((resolve) => setTimeout(resolve, delay));
      return;
    }
    const deadline = Date.now() + this.#options.flushTimeoutMs;
    while (this.#units.bytes >= hard) {
      this.checkOpen();
      if (Date.now() > deadline) {
        throw new StorageError('ERR_STORE_UNAVAILABLE', `volume ${this.#init.volume}: write blocked on a full dirty set: ${describe(this.#lastError)}`, { fields: { volume: this.#init.volume } });
      }
      this.syncOnce();
      await this.#waitForChange();
    }
  }

  /**
   * Stops the loop. With `flush` (the default) everything is uploaded first; uploads already
   * past their snapshot then finish (and commit), up to `flushTimeoutMs`. The unit files are
   * the caller's to close; {@link notify} afterwards wakes whoever still waits.
   */
  async stop(options: { flush?: boolean } = {}): Promise<void> {
    if (options.flush !== false && !this.#fenced) await this.flush();
    this.#stopped = true;
    clearInterval(this.#timer);
    const deadline = Date.now() + this.#options.flushTimeoutMs;
    while ((this.#committing || this.#uploads > 0) && !this.#fenced && Date.now() < deadline) await this.#waitForChange();
  }

  /** Wakes everything waiting for write-back progress (flushes, blocked writes, the commit loop). */
  notify(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }

  async #waitForChange(): Promise<void> {
    // Also wake periodically: a back-off may have expired with nothing else changing.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#changed.promise, new Promise<void>((resolve) => { timer = setTimeout(resolve, this.#options.intervalMs * 2); })]);
    clearTimeout(timer);
  }

  async #upload(dirty: DirtyUnit): Promise<void> {
    dirty.uploading = true;
    this.#uploads++;
    const round = this.#retryRound;
    try {
      const body = this.#buffers.pop() ?? Buffer.allocUnsafe(this.#init.unitSize);
      let object: string | null = null;
      let gen: number;
      let sealed: string | undefined;
      try {
        const snapshot = await this.#units.snapshot(dirty, body);
        ({ gen, sealed } = snapshot);
        if (!snapshot.empty) {
          const known = snapshot.known;
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
      this.#pending.push({ dirty, gen, object });
      this.#committing ??= this.#commitLoop().finally(() => { this.#committing = undefined; });
      this.syncOnce();
    } catch (error) {
      dirty.uploading = false;
      this.#uploads--;
      this.#failed('upload failed', error, { unit: dirty.unit }, round);
      this.notify();
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
        this.#units.linkable = false;
        this.#init.logger.info('object store is on another filesystem: uploads copy', { volume: this.#init.volume });
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
          this.#init.logger.error('volume fenced: writes now fail', { volume: this.#init.volume, error: describe(error) });
          for (const item of [...batch, ...this.#pending]) item.dirty.uploading = false;
          this.#pending = [];
          this.notify();
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
        if (item.object) this.#init.head.set(item.dirty.unit, item.object);
        else this.#init.head.delete(item.dirty.unit);
        item.dirty.committedGen = Math.max(item.dirty.committedGen, item.gen);
      }
      await Promise.all(batch.map((item) => this.#finish(item)));
      this.notify();
    }
  }

  /** After a commit: a unit not written since its snapshot becomes clean (its file joins the cache). */
  async #finish(item: Uploaded): Promise<void> {
    try {
      await this.#units.retire(item.dirty, item.gen, item.object);
    } catch (error) {
      this.#init.logger.warn('finishing an upload failed', { volume: this.#init.volume, unit: item.dirty.unit, error: describe(error) });
    }
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
      this.#init.logger.warn(message, { volume: this.#init.volume, failures: this.#failures, retryMs: delay, error: describe(error), ...fields, ...(error as { fields?: object }).fields });
    }
  }
}
