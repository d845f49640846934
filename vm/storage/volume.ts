import type { Volume, VolumeStore } from '../volume.ts';
import type { Attachment, ServiceStats } from './daemon/service.ts';
import type { StorageDaemon } from './daemon/client.ts';
import type { GcResult } from './gc.ts';
import type { Checkpoint, VolumeUsage } from './volumes.ts';

/**
 * Volumes whose true copy lives in the object store, served by the storage daemon. A new volume
 * is a clone of the base image's map (the image file is imported once), so creating one writes
 * only metadata.
 */
export class ObjectVolumeStore implements VolumeStore {
  readonly #daemon: StorageDaemon;

  constructor(daemon: StorageDaemon) {
    this.#daemon = daemon;
  }

  /** Creates volume `id` as a clone of `image` (an ext4 image file, imported on first use). */
  async create(id: string, image: string): Promise<ObjectVolume> {
    await this.#daemon.call('createFrom', { id, image });
    return this.open(id);
  }

  /** Creates volume `id` as a clone of image volume `image` (checkpoint v0), reading its map from the store if need be. */
  async createFromImage(id: string, image: string): Promise<ObjectVolume> {
    await this.#daemon.call('createFrom', { id, volume: image, checkpoint: 'v0' });
    return this.open(id);
  }

  /** Imports an ext4 image file as the new volume `id` (checkpoint v0); its lease is let go so any peer can clone it. */
  async importImage(id: string, file: string): Promise<void> {
    await this.#daemon.call('importImage', { id, file });
  }

  /** Creates an empty volume of `size` bytes, formatted with ext4 unless `format` is false. */
  async createEmpty(id: string, size: number, options: { format?: boolean; unitSize?: number } = {}): Promise<ObjectVolume> {
    await this.#daemon.call('create', { id, size, format: options.format ?? true, ...(options.unitSize ? { unitSize: options.unitSize } : {}) });
    return this.open(id);
  }

  /** A handle on volume `id`; nothing is checked until it is used (then it may restore from the store). */
  open(id: string): ObjectVolume {
    return new ObjectVolume(this.#daemon, id);
  }

  /** Ids starting with `prefix` whose metadata in the store nobody changed for `idleMs`. */
  async idleVolumes(prefix: string, idleMs: number): Promise<string[]> {
    return this.#daemon.call<string[]>('idleVolumes', { prefix, idleMs });
  }

  /** Deletes a volume and its metadata; it must be unmounted. A missing volume is not an error. */
  async remove(id: string): Promise<void> {
    await this.#daemon.call('remove', { id });
  }

  /** Drops this peer's copy of a volume another peer took over; the object store keeps it. */
  async forget(id: string): Promise<void> {
    await this.#daemon.call('forget', { id });
  }

  /** One garbage-collection pass over the object store. */
  gc(options: { graceMs?: number; dryRun?: boolean } = {}): Promise<GcResult> {
    return this.#daemon.call('gc', options);
  }

  /** The daemon's counters. */
  stats(): Promise<ServiceStats> {
    return this.#daemon.call('stats');
  }
}

/** One object-storage volume: mount/unmount for the sandbox, plus checkpoints and clones. */
export class ObjectVolume implements Volume {
  readonly id: string;
  readonly #daemon: StorageDaemon;

  constructor(daemon: StorageDaemon, id: string) {
    this.#daemon = daemon;
    this.id = id;
  }

  /** Mounts the volume's ext4 at `target`; fails with ERR_VOLUME_MOUNTED when already mounted. */
  async mount(target: string): Promise<void> {
    await this.#daemon.call<Attachment>('mount', { id: this.id, target });
  }

  /**
   * Like {@link mount}, taking the lease even if another owner still holds it (failover: the
   * owner is known to be dead).
   */
  async mountForce(target: string): Promise<void> {
    await this.#daemon.call<Attachment>('mount', { id: this.id, target, force: true });
  }

  /** Unmounts and returns once everything written is durable in the object store; no-op when not mounted. */
  async unmount(): Promise<void> {
    await this.#daemon.call('unmount', { id: this.id });
  }

  /** Takes a checkpoint (fsfreeze, flush, copy the map, thaw); processes keep running. */
  checkpoint(comment = ''): Promise<Checkpoint> {
    return this.#daemon.call('checkpoint', { id: this.id, comment });
  }

  /** Checkpoints, oldest first. */
  checkpoints(): Promise<Checkpoint[]> {
    return this.#daemon.call('checkpoints', { id: this.id });
  }

  /** Its checkpoints and the bytes only it holds in the object store. */
  usage(): Promise<VolumeUsage> {
    return this.#daemon.call('usage', { id: this.id });
  }

  /** Points the head at checkpoint `checkpoint` (`v3`); the volume must be unmounted. */
  async restore(checkpoint: string): Promise<void> {
    await this.#daemon.call('restore', { id: this.id, checkpoint });
  }

  /** Deletes a checkpoint. */
  async deleteCheckpoint(checkpoint: string): Promise<void> {
    await this.#daemon.call('deleteCheckpoint', { id: this.id, checkpoint });
  }

  /** A new volume `id` from a checkpoint of this one (the newest when omitted): metadata only. */
  async clone(id: string, checkpoint?: string): Promise<ObjectVolume> {
    await this.#daemon.call('createFrom', { id, volume: this.id, ...(checkpoint ? { checkpoint } : {}) });
    return new ObjectVolume(this.#daemon, id);
  }

  /** Mounts a checkpoint read-only at `target`. */
  async mountCheckpoint(checkpoint: string, target: string): Promise<void> {
    await this.#daemon.call('mountCheckpoint', { id: this.id, checkpoint, target });
  }

  /** Unmounts a read-only checkpoint mount, or detaches one from {@link attachCheckpoint}; not attached is fine. */
  async unmountCheckpoint(checkpoint: string): Promise<void> {
    await this.#daemon.call('unmountCheckpoint', { id: this.id, checkpoint });
  }

  /** Serves a checkpoint as a read-only loop device for someone else to mount; returns the device path. */
  async attachCheckpoint(checkpoint: string): Promise<string> {
    return (await this.#daemon.call<Attachment>('attachCheckpoint', { id: this.id, checkpoint })).device;
  }

  /** Once the device is mounted: the kernel frees it when the last mount goes. */
  async autoclearCheckpoint(checkpoint: string): Promise<void> {
    await this.#daemon.call('autoclearCheckpoint', { id: this.id, checkpoint });
  }

  /** Stops serving a checkpoint attached with {@link attachCheckpoint} once its device let go (waiting up to `waitMs`). */
  async detachCheckpoint(checkpoint: string, options: { waitMs?: number } = {}): Promise<void> {
    await this.#daemon.call('unmountCheckpoint', { id: this.id, checkpoint, ...options });
  }

  /** Waits until everything written so far is in the object store. */
  async flush(): Promise<void> {
    await this.#daemon.call('flush', { id: this.id });
  }
}
