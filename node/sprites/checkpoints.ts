import { canCheckpoint, type CheckpointInfo, type CheckpointVolume, type SandboxInit, type VolumeStore } from '../../vm/index.ts';
import { PeerError } from '../errors.ts';
import type { SpriteDocs, SpriteRecord } from '../records/index.ts';
import { CheckpointLineage } from './lineage.ts';
import type { Machine, SpritePartInit } from './machines.ts';
import type { QuotaGate } from '../quotas.ts';
import type { UsageMeter } from './usage.ts';

/** What a sprite's checkpoints need. */
export interface CheckpointsInit extends SpritePartInit {
  volumes: Pick<VolumeStore, 'open'>;
  /** Where the lineage of the checkpoints is kept (it follows the sprite between peers). */
  docs: SpriteDocs;
  /** Keeps the sprite's checkpoints and stored bytes in its usage document. */
  usage: Pick<UsageMeter, 'measure'>;
  /** The orgs' quotas: a checkpoint asks first. */
  quotas?: QuotaGate;
}

/** A checkpoint with where it came from: `source` (the checkpoint it was taken from) and that one's line back. */
export interface CheckpointView extends CheckpointInfo {
  source?: string;
  history: string[];
}

/**
 * A sprite's checkpoints: create, list, delete and restore through the API, the same create and
 * list asked from inside the sprite, and the newest ones kept mounted inside it.
 */
export class SpriteCheckpoints {
  readonly #init: CheckpointsInit;
  readonly #lineage: CheckpointLineage;

  constructor(init: CheckpointsInit) {
    this.#init = init;
    this.#lineage = new CheckpointLineage(init.docs);
  }

  /**
   * Checkpoints a sprite's disk (metadata only; its processes keep running). Its mount inside
   * follows in the background, so the API answers in checkpoint time.
   */
  create(name: string, comment = ''): Promise<CheckpointInfo> {
    return this.#create(name, comment);
  }

  /** Throws ERR_QUOTA_EXCEEDED when the sprite's org is at its checkpoint or storage quota: the API asks before its stream starts (the checkpoint asks again). */
  precheck(name: string): void {
    this.#init.quotas?.check(this.#init.machines.owned(name).org, 'checkpoint');
  }

  /** A sprite's checkpoints, oldest first. */
  list(name: string): Promise<CheckpointInfo[]> {
    return this.#volume(name).checkpoints();
  }

  /** A sprite's checkpoints with their lineage, oldest first. */
  async views(name: string): Promise<CheckpointView[]> {
    const sprite = this.#init.machines.owned(name).id;
    return (await this.list(name)).map((info) => {
      const source = this.#lineage.source(sprite, info.id);
      return { ...info, ...(source === undefined ? {} : { source }), history: this.#lineage.history(sprite, info.id) };
    });
  }

  /** Deletes one checkpoint; throws ERR_CHECKPOINT_NOT_FOUND. */
  async delete(name: string, id: string): Promise<void> {
    const volume = this.#volume(name);
    await requireCheckpoint(volume, id);
    await volume.deleteCheckpoint(id);
    this.#lineage.deleted(this.#init.machines.owned(name).id, id);
    const { machines } = this.#init;
    void machines.syncMounts(machines.running(name));
    await this.#init.usage.measure(name);
  }

  /**
   * Restores a sprite's disk to a checkpoint: stops it, points the disk at the checkpoint, and starts
   * it again if it ran. `progress` hears each step.
   */
  async restore(name: string, id: string, progress: (step: string) => void = () => undefined): Promise<SpriteRecord> {
    const { machines } = this.#init;
    const volume = this.#volume(name);
    await requireCheckpoint(volume, id);
    const wasRunning = await machines.exclusive(name, async () => {
      const machine = machines.untrack(name);
      if (machine) {
        progress('Stopping sprite...');
        await machines.halt(machine);
      }
      // A sprite in cold sleep stays asleep on the restored disk.
      if (machine || machines.get(name).state !== 'cold') machines.setState(name, 'stopped');
      progress(`Restoring disk to ${id}...`);
      await volume.restore(id);
      this.#lineage.restored(machines.owned(name).id, id);
      return machine !== undefined;
    });
    await this.#init.usage.measure(name);
    if (!wasRunning) return machines.get(name);
    progress('Starting sprite...');
    return this.#init.startSprite(name);
  }

  /** What code inside a machine may ask of the peer: checkpoints of its own sprite, nothing else. */
  insideRequests(machine: Machine): Pick<SandboxInit, 'requests' | 'onRequestError'> {
    const name = (): string => {
      if (machine.name === undefined || this.#init.machines.running(machine.name) !== machine) throw new PeerError('ERR_SPRITE_NOT_RUNNING', 'this sprite is not running');
      return machine.name;
    };
    return {
      requests: {
        createCheckpoint: (comment) => this.#create(name(), comment, machine),
        listCheckpoints: () => this.list(name()),
      },
      onRequestError: (request, error) => {
        this.#init.logger.warn('request from inside a sprite failed', { sprite: machine.name ?? null, op: request.op, error: (error as Error).message });
      },
    };
  }

  /**
   * `from`: the request came from inside this machine, which must still be the sprite's; the
   * answer then waits for the mount, so the caller can use /.sprite/checkpoints/<id> at once.
   */
  async #create(name: string, comment: string, from?: Machine): Promise<CheckpointInfo> {
    const { machines } = this.#init;
    const volume = this.#volume(name);
    // Counted as under way until its usage is in the records, so checkpoints at once cannot pass the quota together.
    const admitted = this.#init.quotas?.admit(machines.owned(name).org, 'checkpoint');
    let created: CheckpointInfo;
    try {
      created = await machines.exclusive(name, async () => {
        if (from && machines.running(name) !== from) throw new PeerError('ERR_SPRITE_NOT_RUNNING', `sprite ${name} is stopping`);
        const checkpoint = await volume.checkpoint(comment);
        this.#lineage.taken(machines.owned(name).id, checkpoint.id, (await volume.checkpoints()).map((c) => c.id));
        return checkpoint;
      });
      await this.#init.usage.measure(name);
    } finally {
      admitted?.();
    }
    const mounted = machines.syncMounts(machines.running(name));
    if (from) await mounted;
    return created;
  }

  /** The volume of a sprite this peer owns, if it takes checkpoints; throws ERR_BAD_REQUEST otherwise. */
  #volume(name: string): CheckpointVolume {
    const volume = this.#init.volumes.open(this.#init.machines.owned(name).id);
    if (!canCheckpoint(volume)) throw new PeerError('ERR_BAD_REQUEST', 'this peer\'s volumes do not support checkpoints');
    return volume;
  }
}

/** Throws ERR_CHECKPOINT_NOT_FOUND unless `volume` has checkpoint `id`. */
async function requireCheckpoint(volume: CheckpointVolume, id: string): Promise<void> {
  if (!(await volume.checkpoints()).some((c) => c.id === id)) throw new PeerError('ERR_CHECKPOINT_NOT_FOUND', `no checkpoint ${id}`);
}
