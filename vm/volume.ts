import { runCommand } from './command.ts';

/**
 * The root disk of one sprite. The sandbox only mounts and unmounts it; where its bytes live
 * (object storage, see vm/storage) is the implementation's business.
 */
export interface Volume {
  /** Stable id, unique within its store. */
  readonly id: string;
  /** Mounts the filesystem at `target` (an existing empty directory). Mounting twice is an error. */
  mount(target: string): Promise<void>;
  /** Unmounts it after flushing; does nothing when not mounted. */
  unmount(): Promise<void>;
}

/** A checkpoint of a volume. */
export interface CheckpointInfo {
  /** `v0`, `v1`, ... */
  id: string;
  comment: string;
  /** Creation time, ms since the epoch. */
  created: number;
}

/** A volume whose versions can be kept and restored (object-storage volumes). */
export interface CheckpointVolume extends Volume {
  /** Takes a checkpoint of the (mounted or not) volume; running processes keep running. */
  checkpoint(comment?: string): Promise<CheckpointInfo>;
  /** Checkpoints, oldest first. */
  checkpoints(): Promise<CheckpointInfo[]>;
  /** Points the head at a checkpoint; the volume must be unmounted. */
  restore(checkpoint: string): Promise<void>;
  /** Deletes a checkpoint. */
  deleteCheckpoint(checkpoint: string): Promise<void>;
  /** How many checkpoints it has and the bytes only it holds in its store (absent: the store cannot tell). */
  usage?(): Promise<{ checkpoints: number; bytes: number }>;
  /**
   * Serves a checkpoint as a read-only block device for a sandbox to mount and returns its path
   * (`/dev/loopN`). Fails when the checkpoint is attached already.
   */
  attachCheckpoint(checkpoint: string): Promise<string>;
  /** Called once the device is mounted: it is freed by the kernel when its last mount goes, even if nobody says so. */
  autoclearCheckpoint(checkpoint: string): Promise<void>;
  /**
   * Stops serving an attached checkpoint once its mounts are gone, waiting up to `waitMs`
   * (default 10 s) for that and failing after; not attached is fine.
   */
  detachCheckpoint(checkpoint: string, options?: { waitMs?: number }): Promise<void>;
}

/** True when `volume` supports checkpoints. */
export function canCheckpoint(volume: Volume): volume is CheckpointVolume {
  return typeof (volume as Partial<CheckpointVolume>).checkpoint === 'function' && typeof (volume as Partial<CheckpointVolume>).restore === 'function';
}

/** Creates and deletes volumes. */
export interface VolumeStore {
  /** Creates a new volume `id` as a copy of the base image. Fails if `id` exists. */
  create(id: string, image: string): Promise<Volume>;
  /** Creates a new volume `id` as a clone of image volume `image` (its checkpoint v0): metadata only. */
  createFromImage(id: string, image: string): Promise<Volume>;
  /** Imports an ext4 image file as the new image volume `id`; fails if the store has that id. */
  importImage(id: string, file: string): Promise<void>;
  /** Opens an existing volume. */
  open(id: string): Volume;
  /** Deletes a volume and its data; the volume must be unmounted. Deleting a missing volume is not an error. */
  remove(id: string): Promise<void>;
  /** Ids starting with `prefix` whose metadata in the store nobody changed for `idleMs`. */
  idleVolumes(prefix: string, idleMs: number): Promise<string[]>;
  /** Drops only this host's copy (cache, local metadata) of an unmounted volume that another peer now owns. */
  forget(id: string): Promise<void>;
}

/** Unmounts `target` if something is mounted there. */
export async function unmountPath(target: string): Promise<void> {
  try {
    await runCommand('umount', [target]);
  } catch (error) {
    if (/not mounted|no mount point|not found/i.test(String((error as Error).message))) return;
    throw error;
  }
}
