import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './command.ts';

/**
 * The root disk of one sprite. The sandbox only mounts and unmounts it; where its bytes live
 * (a local file today, object storage later) is the implementation's business.
 */
export interface Volume {
  /** Stable id, unique within its store. */
  readonly id: string;
  /** Mounts the filesystem at `target` (an existing empty directory). Mounting twice is an error. */
  mount(target: string): Promise<void>;
  /** Unmounts it after flushing; does nothing when not mounted. */
  unmount(): Promise<void>;
}

/** Creates and deletes volumes. */
export interface VolumeStore {
  /** Creates a new volume `id` as a copy of the base image. Fails if `id` exists. */
  create(id: string, image: string): Promise<Volume>;
  /** Opens an existing volume. */
  open(id: string): Volume;
  /** Deletes a volume and its data; the volume must be unmounted. Deleting a missing volume is not an error. */
  remove(id: string): Promise<void>;
}

/** Volumes as sparse ext4 files in one directory, loop-mounted. */
export class LocalVolumeStore implements VolumeStore {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  async create(id: string, image: string): Promise<Volume> {
    await mkdir(this.#dir, { recursive: true });
    // A sparse copy of the image: only the blocks mkfs wrote are copied (a few MiB of 100 GiB).
    await runCommand('cp', ['--sparse=always', '--no-clobber', image, this.#path(id)]);
    return this.open(id);
  }

  open(id: string): Volume {
    return new LocalVolume(id, this.#path(id));
  }

  async remove(id: string): Promise<void> {
    await rm(this.#path(id), { force: true });
  }

  #path(id: string): string {
    return join(this.#dir, `${id}.ext4`);
  }
}

class LocalVolume implements Volume {
  readonly id: string;
  readonly #file: string;
  #target: string | undefined;

  constructor(id: string, file: string) {
    this.id = id;
    this.#file = file;
  }

  async mount(target: string): Promise<void> {
    if (this.#target) throw new Error(`volume ${this.id} is already mounted at ${this.#target}`);
    // `loop` sets autoclear, so the loop device goes away with the last unmount;
    // noinit_itable stops ext4's background zeroing from filling the sparse file.
    await runCommand('mount', ['-o', 'loop,noinit_itable,noatime', this.#file, target]);
    this.#target = target;
  }

  async unmount(): Promise<void> {
    if (!this.#target) return;
    await unmountPath(this.#target);
    this.#target = undefined;
  }
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
