import { createHash } from 'node:crypto';
import { mkdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockDevice, DeviceStats } from '../device/device.ts';
import { StorageError, describe, hasCode } from '../errors.ts';
import { FuseServer, type FuseStats } from '../fuse/server.ts';
import { collectGarbage, type GcResult } from '../gc.ts';
import type { Logger } from '../../logger.ts';
import { CountingStore, type StoreCounters } from '../store/counting.ts';
import { openObjectStore } from '../store/open.ts';
import { Volumes, parseCheckpointId, type Checkpoint, type VolumeUsage, type VolumesInit } from '../volumes.ts';
import { idleVolumes } from '../device/journal.ts';
import type { VolumeRecord } from '../device/meta-db.ts';
import { importFile } from './import.ts';
import { attachLoop, detachLoop, freeze, loopsBackedUnder, makeExt4, mountExt4, mountsOf, thaw, unmount } from './mounts.ts';

/** Options of the storage service (one per data dir). */
export interface StorageServiceInit extends Omit<VolumesInit, 'store' | 'logger'> {
  /** Object store URL: `file:///dir` or `s3://bucket/prefix?endpoint=...`. */
  objectStore: string;
  logger: Logger;
  /** FUSE reader threads. @default 2 */
  readers?: number;
}

/** Where an attached volume is. */
export interface Attachment {
  /** The volume's file on the FUSE mount. */
  file: string;
  /** The loop device over that file. */
  device: string;
  /** Where its ext4 is mounted, if it is. */
  target?: string;
  readOnly: boolean;
  /**
   * The kernel detaches the loop device by itself once its filesystem is unmounted. From then
   * on the daemon no longer owns the device name: it must never `losetup -d` it again.
   */
  autoclear: boolean;
}

/** Everything the service can report. */
export interface ServiceStats {
  ioFlusher: boolean;
  fuse: FuseStats;
  store: StoreCounters;
  cache: ReturnType<Volumes['cache']['stats']>;
  devices: Record<string, DeviceStats>;
  attached: Record<string, Attachment>;
}

/**
 * The storage service of one data dir, run inside the storage daemon: the volume engine, one
 * FUSE mount serving a file per attached volume, and the loop devices and ext4 mounts on top.
 */
export class StorageService {
  readonly volumes: Volumes;
  readonly store: CountingStore;
  readonly #fuse: FuseServer;
  readonly #logger: Logger;
  readonly #attached = new Map<string, Attachment>();
  readonly #views = new Map<string, BlockDevice>();
  readonly #images = new Map<string, Promise<string>>();
  readonly #busy = new Map<string, Promise<unknown>>();
  #ioFlusher = false;

  private constructor(volumes: Volumes, store: CountingStore, fuse: FuseServer, logger: Logger) {
    this.volumes = volumes;
    this.store = store;
    this.#fuse = fuse;
    this.#logger = logger;
  }

  /** Cleans up what a crashed predecessor left, opens the engine and mounts FUSE. */
  static async start(init: StorageServiceInit): Promise<StorageService> {
    const fuseDir = join(init.dataDir, 'fuse');
    await mkdir(init.dataDir, { recursive: true });
    await cleanupStale(fuseDir, init.logger);
    const store = new CountingStore(await openObjectStore(init.objectStore));
    const volumes = await Volumes.open({ ...init, store, logger: init.logger });
    let fuse: FuseServer;
    try {
      fuse = await FuseServer.start({ mountpoint: fuseDir, logger: init.logger.child({ unit: 'fuse' }), ...(init.readers ? { readers: init.readers } : {}) });
    } catch (error) {
      await volumes.close();
      await store.close();
      throw error;
    }
    init.logger.info('storage service started', { dataDir: init.dataDir, store: store.url, conditionalWrites: store.conditionalWrites });
    return new StorageService(volumes, store, fuse, init.logger);
  }

  /** Records whether the process runs with PR_SET_IO_FLUSHER (reported in stats). */
  set ioFlusher(value: boolean) {
    this.#ioFlusher = value;
  }

  /** Creates an empty volume; with `format`, also puts a fresh ext4 on it. */
  async create(id: string, options: { size: number; unitSize?: number; format?: boolean }): Promise<VolumeRecord> {
    const record = await this.volumes.create(id, options);
    if (options.format) {
      const { device } = await this.attach(id);
      try {
        await makeExt4(device);
      } finally {
        await this.detach(id);
      }
    }
    return record;
  }

  /**
   * Imports an image file (a sparse ext4 file) once as an image volume with checkpoint v0 and
   * returns its id; later calls with the same file (path, size, mtime) reuse it, also across peers.
   */
  async ensureImage(file: string): Promise<string> {
    const path = await realpath(file);
    const info = await stat(path);
    const id = `image-${createHash('sha256').update(`${path}:${info.size}:${info.mtimeMs}`).digest('hex').slice(0, 16)}`;
    let importing = this.#images.get(id);
    if (!importing) {
      importing = this.#importImage(id, path, info.size).finally(() => this.#images.delete(id));
      this.#images.set(id, importing);
    }
    return importing;
  }

  /**
   * Imports an image file as the new volume `id` (ERR_VOLUME_EXISTS if the store has one) with
   * checkpoint v0, then lets its lease go: any peer sharing the store can clone or remove it.
   */
  async importImage(id: string, file: string): Promise<VolumeRecord> {
    const path = await realpath(file);
    const { size } = await stat(path);
    const unit = this.volumes.unitSize;
    await this.volumes.create(id, { size: Math.ceil(size / unit) * unit, origin: `image ${id}` });
    try {
      await this.#fillFromFile(id, path, `image ${id}`);
    } catch (error) {
      await this.volumes.closeDevice(id, { flush: false }).catch(() => undefined);
      await this.volumes.remove(id).catch(() => undefined);
      throw error;
    }
    await this.volumes.release(id);
    return this.volumes.db.volume(id)!;
  }

  /** Creates volume `id` as a clone of an image file (imported on first use) or of another volume's checkpoint. */
  async createFrom(id: string, source: { image?: string; volume?: string; checkpoint?: string }): Promise<VolumeRecord> {
    if (source.image) return this.volumes.clone(id, await this.ensureImage(source.image), 0);
    if (!source.volume) throw new StorageError('ERR_STORAGE_CONFIG', 'createFrom needs an image or a volume');
    return this.volumes.clone(id, source.volume, source.checkpoint === undefined ? undefined : parseCheckpointId(source.checkpoint));
  }

  /** Serves the volume as a FUSE file and attaches a direct-I/O loop device to it. */
  async attach(id: string, options: { force?: boolean } = {}): Promise<Attachment> {
    return this.#exclusive(id, async () => {
      const existing = this.#attached.get(id);
      if (existing) return existing;
      const device = await this.volumes.device(id, options);
      const file = this.#fuse.add(id, device);
      try {
        const loop = await attachLoop(file);
        const attachment: Attachment = { file, device: loop, readOnly: false, autoclear: false };
        this.#attached.set(id, attachment);
        return attachment;
      } catch (error) {
        this.#fuse.remove(id);
        await this.volumes.closeDevice(id, { flush: false });
        throw error;
      }
    });
  }

  /** Detaches the loop device, stops serving the file and flushes the volume. */
  async detach(id: string): Promise<void> {
    return this.#exclusive(id, () => this.#detach(id));
  }

  /**
   * Mounts the volume's ext4 at `target` (attaching it first). The loop device is marked to
   * detach itself when the filesystem is unmounted, so a crashed daemon leaks no loop devices.
   */
  async mount(id: string, target: string, options: { force?: boolean } = {}): Promise<Attachment> {
    const attachment = await this.attach(id, options);
    return this.#exclusive(id, async () => {
      if (attachment.target) throw new StorageError('ERR_VOLUME_MOUNTED', `volume ${id} is already mounted at ${attachment.target}`, { fields: { volume: id } });
      await mkdir(target, { recursive: true });
      try {
        await mountExt4(attachment.device, target);
      } catch (error) {
        await this.#detach(id).catch(() => undefined);
        throw error;
      }
      attachment.target = target;
      await letGo(attachment);
      return attachment;
    });
  }

  /** Unmounts the filesystem, waits for the loop device to let go, then flushes to the store. */
  async unmount(id: string): Promise<void> {
    return this.#exclusive(id, async () => {
      const attachment = this.#attached.get(id);
      if (attachment?.target) {
        await unmount(attachment.target);
        attachment.target = undefined;
      }
      await this.#detach(id);
    });
  }

  /**
   * Serves checkpoint `checkpoint` of a volume read-only and attaches a read-only loop device to
   * it, for a consumer (a sandbox) to mount; see {@link autoclearCheckpoint}.
   */
  async attachCheckpoint(id: string, checkpoint: string): Promise<Attachment> {
    const name = viewName(id, checkpoint);
    return this.#exclusive(name, () => this.#attachView(id, name));
  }

  /**
   * Detaches a checkpoint's loop device while its consumer has it mounted: the kernel then frees
   * it when the last mount goes, so a consumer that dies (a sandbox's mount namespace) leaks no
   * loop device. Later detaches leave the device number alone (it may belong to someone else).
   */
  async autoclearCheckpoint(id: string, checkpoint: string): Promise<void> {
    const name = viewName(id, checkpoint);
    return this.#exclusive(name, async () => {
      const attachment = this.#attached.get(name);
      if (attachment) await letGo(attachment);
    });
  }

  /** Mounts checkpoint `checkpoint` of a volume read-only at `target`. */
  async mountCheckpoint(id: string, checkpoint: string, target: string): Promise<Attachment> {
    const name = viewName(id, checkpoint);
    return this.#exclusive(name, async () => {
      const attachment = await this.#attachView(id, name);
      try {
        await mkdir(target, { recursive: true });
        await mountExt4(attachment.device, target, { readOnly: true });
      } catch (error) {
        await this.#detachView(name).catch(() => undefined);
        throw error;
      }
      attachment.target = target;
      await letGo(attachment);
      return attachment;
    });
  }

  /**
   * Unmounts a checkpoint mounted by {@link mountCheckpoint}, or detaches one attached by
   * {@link attachCheckpoint} (whose consumer must have unmounted it), and stops serving it. Waits
   * up to `waitMs` for the loop device to let go of the file (ERR_MOUNT after that: call again
   * later); not attached is fine.
   */
  async unmountCheckpoint(id: string, checkpoint: string, options: { waitMs?: number } = {}): Promise<void> {
    const name = viewName(id, checkpoint);
    return this.#exclusive(name, () => this.#detachView(name, options.waitMs));
  }

  async #attachView(id: string, name: string): Promise<Attachment> {
    if (this.#attached.has(name)) throw new StorageError('ERR_VOLUME_MOUNTED', `checkpoint ${name} is already attached`, { fields: { volume: id } });
    const view = await this.volumes.view(id, parseCheckpointId(name.slice(name.indexOf('@') + 1)));
    const file = this.#fuse.add(name, view);
    this.#views.set(name, view);
    try {
      const attachment: Attachment = { file, device: await attachLoop(file, { readOnly: true }), readOnly: true, autoclear: false };
      this.#attached.set(name, attachment);
      return attachment;
    } catch (error) {
      this.#fuse.remove(name);
      this.#views.delete(name);
      await view.stop().catch(() => undefined);
      throw error;
    }
  }

  async #detachView(name: string, waitMs?: number): Promise<void> {
    const attachment = this.#attached.get(name);
    if (!attachment) return;
    if (attachment.target) {
      await unmount(attachment.target);
      attachment.target = undefined;
    }
    await letGo(attachment);
    await this.#waitClosed(name, waitMs);
    this.#fuse.remove(name);
    await this.#views.get(name)?.stop();
    this.#views.delete(name);
    this.#attached.delete(name);
  }

  /**
   * Checkpoint: freeze the mounted filesystem (running processes keep running, their writes
   * wait), flush to the store, copy the map to a new version in one commit, thaw.
   */
  async checkpoint(id: string, comment = ''): Promise<Checkpoint> {
    return this.#exclusive(id, async () => {
      const target = this.#attached.get(id)?.target;
      if (target) await freeze(target);
      try {
        return await this.volumes.checkpoint(id, comment);
      } finally {
        if (target) await thaw(target).catch((error) => this.#logger.error('thaw failed', { volume: id, target, error: describe(error) }));
      }
    });
  }

  /** Checkpoints of a volume, oldest first. */
  async checkpoints(id: string): Promise<Checkpoint[]> {
    await this.volumes.refresh(id);
    return this.volumes.checkpoints(id);
  }

  /** Checkpoints and stored bytes of a volume (see Volumes.usage). */
  async usage(id: string): Promise<VolumeUsage> {
    await this.volumes.refresh(id);
    return this.volumes.usage(id);
  }

  /** Points the volume's head at a checkpoint; the volume must be unmounted. */
  async restore(id: string, checkpoint: string): Promise<void> {
    return this.#exclusive(id, async () => {
      if (this.#attached.has(id)) throw new StorageError('ERR_VOLUME_MOUNTED', `volume ${id} must be unmounted to restore`, { fields: { volume: id } });
      await this.volumes.closeDevice(id);
      await this.volumes.restore(id, parseCheckpointId(checkpoint));
    });
  }

  /** Deletes a checkpoint. */
  async deleteCheckpoint(id: string, checkpoint: string): Promise<void> {
    await this.volumes.deleteCheckpoint(id, parseCheckpointId(checkpoint));
  }

  /** Deletes a volume everywhere; it must be unmounted. A missing volume is not an error. */
  async remove(id: string): Promise<void> {
    return this.#exclusive(id, async () => {
      if (this.#attached.has(id)) throw new StorageError('ERR_VOLUME_MOUNTED', `volume ${id} must be unmounted to remove`, { fields: { volume: id } });
      await this.volumes.closeDevice(id, { flush: false });
      await this.volumes.remove(id);
    });
  }

  /** Ids starting with `prefix` whose metadata in the store nobody changed for `idleMs`. */
  async idleVolumes(prefix: string, idleMs: number): Promise<string[]> {
    return idleVolumes(this.volumes.store, prefix, idleMs);
  }

  /** Drops the local copy of a volume another peer took over; nothing is written to the store. */
  async forget(id: string): Promise<void> {
    return this.#exclusive(id, async () => {
      if (this.#attached.has(id)) throw new StorageError('ERR_VOLUME_MOUNTED', `volume ${id} must be unmounted to forget`, { fields: { volume: id } });
      await this.volumes.closeDevice(id, { flush: false });
      await this.volumes.forget(id);
    });
  }

  /** Flushes a volume's device (if open) to the store. */
  async flush(id: string): Promise<void> {
    const device = this.volumes.hasDevice(id) ? await this.volumes.device(id) : undefined;
    await device?.flush();
  }

  /** One garbage-collection pass over the whole store. */
  async gc(options: { graceMs?: number; dryRun?: boolean } = {}): Promise<GcResult> {
    return collectGarbage({ store: this.store, logger: this.#logger, ...options });
  }

  /** Counters of every part. */
  async stats(): Promise<ServiceStats> {
    const devices: Record<string, DeviceStats> = {};
    for (const id of this.volumes.held()) if (this.volumes.hasDevice(id)) devices[id] = (await this.volumes.device(id)).stats();
    return {
      ioFlusher: this.#ioFlusher, fuse: this.#fuse.stats(), store: { ...this.store.counters }, cache: this.volumes.cache.stats(),
      devices, attached: Object.fromEntries(this.#attached),
    };
  }

  /** Unmounts everything (flushing every volume), stops FUSE and closes the engine. */
  async stop(): Promise<void> {
    for (const name of [...this.#attached.keys()]) {
      const at = name.indexOf('@v');
      const work = at >= 0 ? this.unmountCheckpoint(name.slice(0, at), name.slice(at + 1)) : this.unmount(name);
      await work.catch((error) => this.#logger.error('unmount at stop failed', { volume: name, error: describe(error) }));
    }
    await this.#fuse.stop({ force: true }).catch((error) => this.#logger.error('fuse stop failed', { error: describe(error) }));
    await this.volumes.close();
    await this.store.close();
  }

  async #detach(id: string): Promise<void> {
    const attachment = this.#attached.get(id);
    if (attachment) {
      if (attachment.target) throw new StorageError('ERR_VOLUME_MOUNTED', `volume ${id} is mounted at ${attachment.target}`, { fields: { volume: id } });
      await letGo(attachment);
      await this.#waitClosed(id);
      this.#fuse.remove(id);
      this.#attached.delete(id);
    }
    // The flush: unmount returns only once the volume is durable in the store.
    await this.volumes.closeDevice(id);
  }

  async #waitClosed(name: string, waitMs = 10_000): Promise<void> {
    // The loop device drops its reference to the file asynchronously after detach.
    for (const deadline = Date.now() + waitMs; this.#fuse.opens(name) > 0;) {
      if (Date.now() > deadline) throw new StorageError('ERR_MOUNT', `${name}: the loop device still holds the file`, { fields: { volume: name } });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async #importImage(id: string, path: string, size: number): Promise<string> {
    try {
      const versions = await this.checkpoints(id);
      if (versions.length > 0) return id;
    } catch (error) {
      if (!hasCode(error, 'ERR_VOLUME_NOT_FOUND')) throw error;
    }
    const unit = this.volumes.db.volume(id)?.unit ?? this.volumes.unitSize;
    if (!this.volumes.db.volume(id)) await this.volumes.create(id, { size: Math.ceil(size / unit) * unit, origin: `image ${path}` });
    await this.#fillFromFile(id, path, `image ${path}`);
    return id;
  }

  /** Writes an image file into volume `id` and checkpoints it (v0 of a new volume). */
  async #fillFromFile(id: string, path: string, comment: string): Promise<void> {
    const started = Date.now();
    const { bytes } = await importFile(await this.volumes.device(id), path);
    await this.volumes.closeDevice(id);
    await this.volumes.checkpoint(id, comment);
    this.#logger.info('image imported', { volume: id, file: path, bytes, ms: Date.now() - started });
  }

  /** Runs operations on one volume one at a time. */
  #exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#busy.get(id) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#busy.set(id, tail);
    void tail.then(() => { if (this.#busy.get(id) === tail) this.#busy.delete(id); });
    return run;
  }
}

/** The FUSE file name of a checkpoint view: `<volume>@v<n>`. */
function viewName(id: string, checkpoint: string): string {
  return `${id}@v${parseCheckpointId(checkpoint)}`;
}

/**
 * Removes what a previous daemon on this data dir left after a crash: ext4 mounts of loop devices
 * over its FUSE files, the loop devices, and the dead FUSE mount itself.
 */
async function cleanupStale(fuseDir: string, logger: Logger): Promise<void> {
  const loops = await loopsBackedUnder(fuseDir);
  const targets = [...(await mountsOf({ sources: loops })), ...(await mountsOf({ under: fuseDir }))];
  if (loops.length === 0 && targets.length === 0) return;
  logger.warn('cleaning up after a previous daemon', { loops, mounts: targets });
  for (const target of targets) await unmount(target, { lazy: true }).catch(() => undefined);
  for (const loop of loops) await detachLoop(loop).catch(() => undefined);
}

/**
 * `losetup -d` at most once per attachment. On a busy (mounted) device it only marks it autoclear;
 * from then on the kernel frees the device when its last user goes and its name may already
 * belong to another attach, of this daemon or another one on the machine: detaching it again
 * would detach someone else's device.
 */
async function letGo(attachment: Attachment): Promise<void> {
  if (attachment.autoclear) return;
  await detachLoop(attachment.device);
  attachment.autoclear = true;
}
