import { rm } from 'node:fs/promises';
import type { VolumeStore } from '../../vm/index.ts';
import type { PeerConfig } from '../config.ts';
import { PeerError } from '../errors.ts';
import type { SpriteRecord, SpriteRegistry } from '../records/index.ts';
import type { Machine, SpritePartInit } from './machines.ts';

/** What moving sprites between peers needs. */
export interface TakeoverInit extends SpritePartInit {
  config: Readonly<PeerConfig>;
  registry: Pick<SpriteRegistry, 'get' | 'claim' | 'watch'>;
  volumes: Pick<VolumeStore, 'forget'>;
}

/**
 * Sprites changing peers: taking one over from a dead owner (`adopt`), handing one to another
 * peer for a drain (`handOff`), and dropping the local copy of one whose record moved elsewhere.
 */
export class Takeover {
  readonly #init: TakeoverInit;

  constructor(init: TakeoverInit) {
    this.#init = init;
  }

  /** Starts dropping local copies of sprites whose records move to another peer; returns the stop function. */
  watch(): () => void {
    return this.#init.registry.watch((name) => this.#recordChanged(name));
  }

  /**
   * Takes over a sprite whose owner is down: mounts its disk from the object store (the lease
   * refuses while the old owner still holds it), claims the record with the next epoch, and starts
   * it here. The old owner, when it returns, sees the higher epoch and drops its copy.
   */
  async adopt(name: string, options: { start?: boolean } = {}): Promise<SpriteRecord> {
    const { registry, volumes } = this.#init;
    const { machines } = this.#init;
    return machines.exclusive(name, async () => {
      const seen = machines.get(name);
      if (seen.owner === machines.peerId) return seen;
      const store = this.#init.config.storage.objectStore;
      if (seen.volume !== store) {
        throw new PeerError('ERR_SPRITE_UNRECOVERABLE', `sprite ${name}'s peer ${seen.owner} is down and its disk is in ${seen.volume ?? 'that peer\'s local storage'}, not in this peer's store`);
      }
      if (options.start === false) {
        // Not running where it was: a sleeping sprite stays asleep (it wakes on use), a stopped one stopped.
        const state = seen.state === 'running' || seen.state === 'warm' ? 'cold' : seen.state;
        const claimed = registry.claim(seen, machines.peerId, state);
        if (!claimed) throw new PeerError('ERR_SPRITE_ELSEWHERE', `sprite ${name} was taken over by another peer first`);
        return claimed;
      }
      let machine: Machine;
      try {
        machine = await machines.load(name, seen.id);
      } catch (error) {
        await volumes.forget(seen.id).catch(() => undefined);
        throw new PeerError('ERR_SPRITE_UNRECOVERABLE', `sprite ${name}'s peer ${seen.owner} is down and its disk cannot be taken over yet: ${(error as Error).message}`, { cause: error });
      }
      const claimed = registry.claim(seen, machines.peerId, 'running');
      if (!claimed) {
        await machines.drop(machine);
        throw new PeerError('ERR_SPRITE_ELSEWHERE', `sprite ${name} was taken over by another peer first`);
      }
      this.#init.logger.info('took over sprite', { sprite: name, from: seen.owner, epoch: claimed.epoch });
      try {
        await machines.run(machine, name);
      } catch (error) {
        await machines.halt(machine);
        machines.setState(name, 'failed', (error as Error).message);
        throw error;
      }
      await machines.syncMounts(machine);
      return claimed;
    });
  }

  /**
   * Moves a sprite to another peer (drain): stops it here, flushes its disk to the store and gives
   * the lease up, then lets `adopt` ask the other peer to claim it (and start it if it ran). If that
   * fails the sprite comes back here as it was.
   */
  async handOff(name: string, adopt: (start: boolean) => Promise<void>): Promise<void> {
    const { machines } = this.#init;
    const record = machines.owned(name);
    const wasRunning = await machines.exclusive(name, async () => {
      const machine = machines.untrack(name);
      if (machine) await machines.halt(machine);
      await this.#init.volumes.forget(record.id);
      return machine !== undefined;
    });
    try {
      await adopt(wasRunning);
    } catch (error) {
      if (wasRunning) await this.#init.startSprite(name).catch(() => undefined);
      throw error;
    }
    await rm(machines.dir(record.id), { recursive: true, force: true });
  }

  /** A record changed: a sprite running here that another peer now owns (or that is gone) is dropped. */
  #recordChanged(name: string): void {
    const { machines } = this.#init;
    const machine = machines.running(name);
    if (!machine) return;
    const record = this.#init.registry.get(name);
    if (record?.owner === machines.peerId && record.id === machine.sandbox.id) return;
    machines.untrack(name);
    this.#init.logger.warn('sprite taken over by another peer; dropping the local copy', { sprite: name, owner: record?.owner ?? null, epoch: record?.epoch ?? null });
    // A stopping peer refuses the lock, but the machine is no longer tracked: drop it anyway.
    void machines.exclusive(name, () => machines.drop(machine))
      .catch(() => machines.drop(machine))
      .catch((error: unknown) => this.#init.logger.warn('dropping the local copy failed', { sprite: name, error: (error as Error).message }));
  }
}
