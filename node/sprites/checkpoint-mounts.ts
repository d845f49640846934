import type { CheckpointVolume, Logger } from '../../vm/index.ts';

/** How many of a sprite's newest checkpoints are mounted inside it. */
const MOUNTED_CHECKPOINTS = 5;

/** Where checkpoint devices get mounted: the running sandbox (sprite-init mounts them). */
export interface CheckpointMountTarget {
  mountCheckpoint(id: string, device: string): Promise<void>;
  unmountCheckpoint(id: string): Promise<void>;
}

/** What one sprite's checkpoint mounts need. */
export interface CheckpointMountsInit {
  volume: CheckpointVolume;
  target: CheckpointMountTarget;
  logger: Logger;
}

/**
 * Keeps the newest checkpoints of one running sprite mounted read-only at
 * /.sprite/checkpoints/<id>: the storage daemon serves each as a read-only loop device, the
 * sandbox mounts it. `sync()` after anything that changes the checkpoints or starts the sprite;
 * `close()` once the sandbox is stopping or gone.
 */
export class CheckpointMounts {
  readonly #init: CheckpointMountsInit;
  /** Checkpoints attached at the daemon, and whether the sandbox has them mounted. */
  readonly #attached = new Map<string, { mounted: boolean }>();
  #current: Promise<void> = Promise.resolve();
  #next: Promise<void> | undefined;
  #closed = false;

  constructor(init: CheckpointMountsInit) {
    this.#init = init;
  }

  /**
   * Brings the mounts in line with the volume's newest checkpoints. Calls that arrive while a
   * sync runs share the one that follows it, so bursts of checkpoints cost at most two passes.
   */
  sync(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#next ??= this.#current.then(() => {
      this.#next = undefined;
      return this.#closed ? undefined : this.#syncOnce();
    });
    const run = this.#next;
    this.#current = run.catch(() => undefined);
    return run;
  }

  /**
   * Stops syncing, unmounts everything still mounted (when the sandbox still answers) and stops
   * the daemon serving the checkpoints. Safe to call after the sandbox is gone: its mounts died
   * with its namespaces, and the devices free themselves.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#current;
    for (const id of [...this.#attached.keys()]) await this.#drop(id, { quiet: true }).catch(() => undefined);
  }

  async #syncOnce(): Promise<void> {
    const checkpoints = await this.#init.volume.checkpoints();
    const wanted = checkpoints
      .map((c) => c.id)
      .sort((a, b) => version(b) - version(a))
      .slice(0, MOUNTED_CHECKPOINTS);
    // One checkpoint that fails (a device still busy) must not hold the others back.
    const errors: unknown[] = [];
    for (const id of [...this.#attached.keys()]) if (!wanted.includes(id)) await this.#drop(id).catch((error: unknown) => errors.push(error));
    for (const id of wanted) {
      if (this.#closed) break;
      if (!this.#attached.has(id)) await this.#add(id).catch((error: unknown) => errors.push(error));
    }
    if (errors.length > 0) throw errors[0];
  }

  async #add(id: string): Promise<void> {
    const { volume, target } = this.#init;
    const device = await volume.attachCheckpoint(id);
    this.#attached.set(id, { mounted: false });
    try {
      await target.mountCheckpoint(id, device);
    } catch (error) {
      await volume.detachCheckpoint(id);
      this.#attached.delete(id);
      throw error;
    }
    this.#attached.get(id)!.mounted = true;
    await volume.autoclearCheckpoint(id);
  }

  async #drop(id: string, options: { quiet?: boolean } = {}): Promise<void> {
    const entry = this.#attached.get(id);
    if (!entry) return;
    if (entry.mounted) {
      await this.#init.target.unmountCheckpoint(id).catch((error: unknown) => {
        // A stopped sandbox took its mounts with it.
        if (!options.quiet) throw error;
      });
      entry.mounted = false;
    }
    try {
      // While the sprite runs, a busy checkpoint must not hold up the caller (a checkpoint delete).
      await this.#init.volume.detachCheckpoint(id, { waitMs: options.quiet ? 10_000 : 1000 });
    } catch (error) {
      // Typically a process inside still holds the lazily unmounted checkpoint; a later pass retries.
      this.#init.logger.warn('checkpoint still in use, detach retried later', { checkpoint: id, error: (error as Error).message });
      throw error;
    }
    this.#attached.delete(id);
  }
}

function version(id: string): number {
  return Number(id.slice(1));
}
