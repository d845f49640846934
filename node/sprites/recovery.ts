import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ControlClient, removeCgroups, unmountPath, type VolumeStore } from '../../vm/index.ts';
import type { PeerConfig } from '../config.ts';
import { SPRITE_ID, type SpriteRegistry } from '../records/index.ts';
import type { Machine, SpritePartInit } from './machines.ts';

/** What recovering from a killed peer or a crashed sprite needs. */
export interface RecoveryInit extends SpritePartInit {
  config: Readonly<PeerConfig>;
  registry: Pick<SpriteRegistry, 'list'>;
  volumes: Pick<VolumeStore, 'forget' | 'remove'>;
}

/**
 * Recovery: cleaning what a killed peer left before this one starts, restarting the sprites that
 * were running then, and marking a sprite failed when its sprite-init exits on its own.
 */
export class Recovery {
  readonly #init: RecoveryInit;

  constructor(init: RecoveryInit) {
    this.#init = init;
  }

  /**
   * Cleans what a killed peer left: sandboxes' mounts and cgroups, pooled sprites nobody owns, and
   * local copies of sprites another peer took over (whose disks must stay in the store).
   */
  async sweep(): Promise<void> {
    const { machines } = this.#init;
    const { volumes } = this.#init;
    const owned = new Set(machines.ownedRecords().map((record) => record.id));
    const elsewhere = new Set(this.#init.registry.list().filter((record) => record.owner !== machines.peerId).map((record) => record.id));
    const dirs = await readdir(join(this.#init.config.dataDir, 'sprites')).catch(() => [] as string[]);
    for (const id of dirs) {
      if (!SPRITE_ID.test(id)) continue;
      const paths = machines.paths(id);
      await new ControlClient(paths.control).call({ op: 'shutdown' }, 5000).catch(() => undefined);
      await unmountPath(join(paths.ns, 'net'));
      await unmountPath(join(paths.ns, 'user'));
      await unmountPath(join(paths.ns, 'idmap'));
      await unmountPath(paths.rootfs);
      await removeCgroups(machines.cgroup(id));
      await rm(paths.run, { recursive: true, force: true });
      if (owned.has(id)) continue;
      if (elsewhere.has(id)) await volumes.forget(id);
      else await volumes.remove(id);
      await rm(machines.dir(id), { recursive: true, force: true });
    }
  }

  /**
   * Brings this peer's sprites back after a restart: those that were running start again (in the
   * background), those in warm sleep are cold now (their memory went with the previous run).
   */
  restartRunning(): void {
    const { machines } = this.#init;
    for (const record of machines.ownedRecords()) {
      // A warm sprite's memory went with the previous run: it is cold now, and wakes on use.
      if (record.state === 'warm') machines.setState(record.name, 'cold');
      if (record.state !== 'running') continue;
      machines.setState(record.name, 'stopped');
      void this.#init.startSprite(record.name).catch((error: unknown) => {
        this.#init.logger.error('restart after peer start failed', { sprite: record.name, error: (error as Error).message });
      });
    }
  }

  /** sprite-init of `machine` exited: its mounts go, and the sprite, if it still runs here, is failed. */
  crashed(machine: Machine, reason: string): void {
    const { machines } = this.#init;
    const { name } = machine;
    this.#init.logger.warn('sprite-init exited', { sprite: name ?? null, id: machine.sandbox.id, reason });
    void machine.mounts?.close();
    if (name === undefined || machines.running(name) !== machine) return;
    machines.untrack(name);
    machines.setState(name, 'failed', reason);
  }
}
