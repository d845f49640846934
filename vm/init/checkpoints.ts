import { mkdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../command.ts';
import { idmapMount } from './idmap-mount.ts';
import { CHECKPOINTS_DIR, STAGE } from './config.ts';
import { coded } from './errors.ts';

const CHECKPOINT_ID = /^v\d{1,9}$/;
const LOOP_DEVICE = /^\/dev\/loop\d{1,6}$/;
const MOUNT_OPTIONS = 'ro,noload,noatime,nosuid,nodev';

/**
 * The read-only checkpoint mounts of this sprite, as /.sprite/checkpoints/<id> inside it.
 *
 * How a mount gets into the container: the container's mount namespace is made by runc after
 * sprite-init's, as a recursive slave copy of it (runc's default root propagation), and a mount
 * that sprite-init makes later reaches the container only through a shared mount. So sprite-init
 * stages a small tmpfs at STAGE.checkpoints, marks it shared before `runc create`, and the
 * container binds it at /.sprite/checkpoints: every ext4 that sprite-init mounts or unmounts
 * under it propagates one way, into the container (which cannot mount or unmount anything:
 * no CAP_SYS_ADMIN, seccomp). Chosen over a shared point on the host because sprite-init's
 * namespace is private on purpose (it drops the host's loop and FUSE mounts, see main.ts):
 * nothing here depends on the host's propagation, and the mounts die with the sandbox's
 * namespaces, so a crash leaks no mount. The peer's storage daemon only hands over a read-only
 * loop device; /dev is the host's devtmpfs, so sprite-init sees it.
 */
export class CheckpointDir {
  readonly #mounted = new Set<string>();
  readonly #idmap: string | undefined;

  private constructor(idmap: string | undefined) {
    this.#idmap = idmap;
  }

  /** Creates the shared tmpfs; runs before the container exists. `idmap`: see InitConfig.idmapNamespace. */
  static async stage(idmap?: string): Promise<CheckpointDir> {
    mkdirSync(STAGE.checkpoints);
    await runCommand('mount', ['-t', 'tmpfs', '-o', 'mode=755,size=64k,nosuid,nodev', 'sprite-checkpoints', STAGE.checkpoints]);
    await runCommand('mount', ['--make-shared', STAGE.checkpoints]);
    return new CheckpointDir(idmap);
  }

  /** Ids mounted now, in the container's terms. */
  list(): Map<string, string> {
    return new Map([...this.#mounted].map((id) => [id, `${CHECKPOINTS_DIR}/${id}`]));
  }

  /** Mounts `device` (a read-only loop device of checkpoint `id`) read-only at /.sprite/checkpoints/<id>. */
  async mount(id: unknown, device: unknown): Promise<void> {
    if (typeof id !== 'string' || !CHECKPOINT_ID.test(id)) throw coded('ERR_BAD_REQUEST', 'id must be a checkpoint id such as v3');
    if (typeof device !== 'string' || !LOOP_DEVICE.test(device) || !statSync(device, { throwIfNoEntry: false })?.isBlockDevice()) {
      throw coded('ERR_BAD_REQUEST', 'device must be a loop device');
    }
    if (this.#mounted.has(id)) throw coded('ERR_BAD_REQUEST', `checkpoint ${id} is mounted already`);
    const target = join(STAGE.checkpoints, id);
    mkdirSync(target, { recursive: true });
    try {
      if (this.#idmap) await this.#mountIdmapped(device, join(STAGE.dir, `checkpoint-${id}`), target, this.#idmap);
      else await runCommand('mount', ['-t', 'ext4', '-o', MOUNT_OPTIONS, device, target]);
    } catch (error) {
      rmdirSync(target);
      throw error;
    }
    this.#mounted.add(id);
  }

  /** Mounts the disk privately (STAGE.dir does not propagate), then its idmapped copy at `target`; the copy keeps the disk mounted. */
  async #mountIdmapped(device: string, source: string, target: string, idmap: string): Promise<void> {
    mkdirSync(source, { recursive: true });
    await runCommand('mount', ['-t', 'ext4', '-o', MOUNT_OPTIONS, device, source]);
    try {
      await idmapMount(source, target, idmap);
    } finally {
      await runCommand('umount', ['-l', source]);
      rmdirSync(source);
    }
  }

  /** Unmounts checkpoint `id`; a process inside it keeps its view until it leaves (lazy). Unknown ids are fine. */
  async unmount(id: unknown): Promise<void> {
    if (typeof id !== 'string' || !this.#mounted.has(id)) return;
    const target = join(STAGE.checkpoints, id);
    await runCommand('umount', ['-l', target]);
    this.#mounted.delete(id);
    try {
      rmdirSync(target);
    } catch {
      // Still a mount point in some copy: the directory goes with the tmpfs.
    }
  }
}
