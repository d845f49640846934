import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ControlClient, Sandbox, canCheckpoint, removeCgroups, sandboxPaths, unmountPath, type CheckpointInfo, type CheckpointVolume, type SandboxInit,
  type VolumeStore,
} from '../vm/index.ts';
import { CheckpointMounts } from './checkpoint-mounts.ts';
import type { PeerConfig } from './config.ts';
import { ApiError } from './errors.ts';
import type { Logger } from './logger.ts';
import { WarmPool, type PoolStatus } from './pool.ts';
import type { SpriteRecord, SpriteRegistry } from './registry.ts';

/** What the sprite manager needs from the peer. */
export interface SpriteManagerInit {
  config: Readonly<PeerConfig>;
  registry: SpriteRegistry;
  volumes: VolumeStore;
  /** Path of the base image new sprites are cloned from. */
  image: string;
  /** Directory mounted at /.sprite/bin. */
  toolsDir: string;
  peerId: string;
  /** Short key that keeps this peer's cgroups apart from other peers on the host. */
  peerKey: string;
  /** API URL of another peer, for messages that send the user there. */
  peerApi?: (peerId: string) => string | undefined;
  logger: Logger;
}

/** A sandbox and the name it got, if any (pooled sandboxes have none yet). */
interface Machine {
  sandbox: Sandbox;
  name: string | undefined;
  /** Its newest checkpoints mounted inside it (volumes without checkpoints: none). */
  mounts: CheckpointMounts | undefined;
}

/** Sprite names follow DNS-label rules so they work as URL host labels. */
export const SPRITE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Message for a name that breaks the rule. */
export const SPRITE_NAME_RULE = "sprite name must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'";

/** Owns this peer's sprites: the warm pool, create/start/stop/destroy, and the running sandboxes. */
export class SpriteManager {
  readonly #init: SpriteManagerInit;
  readonly #pool: WarmPool<Machine>;
  readonly #running = new Map<string, Machine>();
  /** Names with a lifecycle operation under way; a second one waits for the first. */
  readonly #busy = new Map<string, Promise<unknown>>();
  #coldCreates = 0;

  constructor(init: SpriteManagerInit) {
    this.#init = init;
    this.#pool = new WarmPool<Machine>({
      depth: init.config.pool.depth,
      concurrency: init.config.pool.concurrency,
      warm: () => this.#prepare(newId(), true),
      discard: (machine) => this.#dispose(machine),
      logger: init.logger.child({ component: 'pool' }),
    });
  }

  /** Cleans up after a previous run, restarts sprites that were running, and starts warming the pool. */
  async start(): Promise<void> {
    await this.#sweep();
    this.#pool.start();
    for (const record of this.#owned()) {
      if (record.state !== 'running') continue;
      this.#init.registry.setState(record.name, 'stopped');
      void this.startSprite(record.name).catch((error: unknown) => {
        this.#init.logger.error('restart after peer start failed', { sprite: record.name, error: (error as Error).message });
      });
    }
  }

  /** Stops every sandbox (records stay, so they come back on the next start) and empties the pool. */
  async stop(): Promise<void> {
    await this.#pool.stop();
    await Promise.allSettled([...this.#running.values()].map((machine) => this.#halt(machine)));
    this.#running.clear();
    await removeCgroups(`/sprites/${this.#init.peerKey}`);
  }

  /** Resolves once the pool is full. */
  poolFull(): Promise<void> {
    return this.#pool.full();
  }

  /** Sprites running on this peer now. */
  load(): number {
    return this.#running.size;
  }

  /** Pool counters for `GET /v1/pool`. */
  poolStatus(): PoolStatus & { fallback: string; coldCreates: number } {
    return { ...this.#pool.status(), fallback: this.#init.config.pool.fallback, coldCreates: this.#coldCreates };
  }

  /** Creates a sprite: a warm sandbox when one is ready (else cold or ERR_POOL_EMPTY), named and started. */
  async create(name: string): Promise<SpriteRecord> {
    if (!SPRITE_NAME.test(name)) throw new ApiError('ERR_BAD_NAME', SPRITE_NAME_RULE);
    if (this.#init.registry.get(name)) throw new ApiError('ERR_NAME_TAKEN', `a sprite named ${name} exists`);
    return this.#exclusive(name, async () => {
      if (this.#init.registry.get(name)) throw new ApiError('ERR_NAME_TAKEN', `a sprite named ${name} exists`);
      let machine = this.#takeWarm();
      if (!machine) {
        if (this.#init.config.pool.fallback === 'fail') throw new ApiError('ERR_POOL_EMPTY', 'the warm pool is empty; try again shortly');
        this.#coldCreates += 1;
        machine = await this.#prepare(newId(), true);
      }
      const now = new Date().toISOString();
      const record: SpriteRecord = {
        name, id: machine.sandbox.id, state: 'running', owner: this.#init.peerId, httpPort: this.#init.config.sprite.httpPort, created: now, updated: now,
      };
      try {
        this.#init.registry.insert(record);
      } catch (error) {
        await this.#dispose(machine);
        throw error;
      }
      try {
        machine.name = name;
        await machine.sandbox.start(name);
        this.#running.set(name, machine);
        await this.#syncMounts(machine);
        return record;
      } catch (error) {
        this.#init.registry.remove(name);
        await this.#dispose(machine);
        throw error;
      }
    });
  }

  /** All records. */
  list(): SpriteRecord[] {
    return this.#init.registry.list();
  }

  /** One record; throws ERR_SPRITE_NOT_FOUND. */
  get(name: string): SpriteRecord {
    const record = this.#init.registry.get(name);
    if (!record) throw new ApiError('ERR_SPRITE_NOT_FOUND', `no sprite named ${name}`);
    return record;
  }

  /** Stops a sprite and deletes its disk, directory and record. */
  async destroy(name: string): Promise<void> {
    const record = this.#local(name);
    await this.#exclusive(name, async () => {
      const machine = this.#running.get(name);
      this.#running.delete(name);
      if (machine) await this.#halt(machine);
      await this.#init.volumes.remove(record.id);
      await rm(this.#spriteDir(record.id), { recursive: true, force: true });
      this.#init.registry.remove(name);
    });
  }

  /** Starts a stopped or failed sprite on its existing disk; a running one is left alone. */
  async startSprite(name: string): Promise<SpriteRecord> {
    const record = this.#local(name);
    return this.#exclusive(name, async () => {
      if (this.#running.has(name)) return this.get(name);
      const machine = await this.#prepare(record.id, false);
      machine.name = name;
      try {
        await machine.sandbox.start(name);
      } catch (error) {
        await this.#halt(machine);
        throw error;
      }
      this.#running.set(name, machine);
      this.#init.registry.setState(name, 'running');
      await this.#syncMounts(machine);
      return this.get(name);
    });
  }

  /** Stops a sprite's processes and unmounts its disk; the record stays as stopped. */
  async stopSprite(name: string): Promise<SpriteRecord> {
    this.#local(name);
    return this.#exclusive(name, async () => {
      const machine = this.#running.get(name);
      this.#running.delete(name);
      if (machine) await this.#halt(machine);
      this.#init.registry.setState(name, 'stopped');
      return this.get(name);
    });
  }

  /**
   * Checkpoints a sprite's disk (metadata only; its processes keep running). Its mount inside
   * follows in the background, so the API answers in checkpoint time.
   */
  checkpoint(name: string, comment = ''): Promise<CheckpointInfo> {
    return this.#checkpoint(name, comment);
  }

  /**
   * `from`: the request came from inside this machine, which must still be the sprite's; the
   * answer then waits for the mount, so the caller can use /.sprite/checkpoints/<id> at once.
   */
  async #checkpoint(name: string, comment: string, from?: Machine): Promise<CheckpointInfo> {
    const volume = this.#checkpointVolume(name);
    const created = await this.#exclusive(name, async () => {
      if (from && this.#running.get(name) !== from) throw new ApiError('ERR_SPRITE_NOT_RUNNING', `sprite ${name} is stopping`);
      return volume.checkpoint(comment);
    });
    const mounted = this.#syncMounts(this.#running.get(name));
    if (from) await mounted;
    return created;
  }

  /** A sprite's checkpoints, oldest first. */
  checkpoints(name: string): Promise<CheckpointInfo[]> {
    return this.#checkpointVolume(name).checkpoints();
  }

  /** Deletes one checkpoint; throws ERR_CHECKPOINT_NOT_FOUND. */
  async deleteCheckpoint(name: string, id: string): Promise<void> {
    const volume = this.#checkpointVolume(name);
    await this.#requireCheckpoint(volume, id);
    await volume.deleteCheckpoint(id);
    void this.#syncMounts(this.#running.get(name));
  }

  /** Restores a sprite's disk to a checkpoint: stops it, points the disk at the checkpoint, and starts it again if it ran. */
  async restore(name: string, id: string): Promise<SpriteRecord> {
    const volume = this.#checkpointVolume(name);
    await this.#requireCheckpoint(volume, id);
    const wasRunning = await this.#exclusive(name, async () => {
      const machine = this.#running.get(name);
      this.#running.delete(name);
      if (machine) await this.#halt(machine);
      this.#init.registry.setState(name, 'stopped');
      await volume.restore(id);
      return machine !== undefined;
    });
    return wasRunning ? this.startSprite(name) : this.get(name);
  }

  #checkpointVolume(name: string): CheckpointVolume {
    const volume = this.#init.volumes.open(this.#local(name).id);
    if (!canCheckpoint(volume)) throw new ApiError('ERR_BAD_REQUEST', 'this peer\'s volumes do not support checkpoints');
    return volume;
  }

  async #requireCheckpoint(volume: CheckpointVolume, id: string): Promise<void> {
    if (!(await volume.checkpoints()).some((c) => c.id === id)) throw new ApiError('ERR_CHECKPOINT_NOT_FOUND', `no checkpoint ${id}`);
  }

  /** The control client of a running sprite; throws ERR_SPRITE_NOT_FOUND or ERR_SPRITE_NOT_RUNNING. */
  control(name: string): ControlClient {
    return this.#machine(name).sandbox.control;
  }

  /** Host path of the socket that reaches the sprite's HTTP port. */
  httpSocket(name: string): string {
    return this.#machine(name).sandbox.paths.http;
  }

  /** Host path of sprite-init's own log. */
  initLog(name: string): string {
    return sandboxPaths(this.#spriteDir(this.#local(name).id)).initLog;
  }

  /** Host path of a service's log (the file may not exist yet). */
  serviceLog(name: string, service: string): string {
    return join(sandboxPaths(this.#spriteDir(this.#local(name).id)).spriteDir, 'logs/services', `${service}.log`);
  }

  /** The record of a sprite this peer owns; throws ERR_SPRITE_NOT_FOUND or ERR_SPRITE_ELSEWHERE. */
  #local(name: string): SpriteRecord {
    const record = this.get(name);
    if (record.owner !== this.#init.peerId) {
      const api = this.#init.peerApi?.(record.owner);
      throw new ApiError('ERR_SPRITE_ELSEWHERE', `sprite ${name} runs on peer ${record.owner}${api ? ` (API ${api})` : ''}`);
    }
    return record;
  }

  #owned(): SpriteRecord[] {
    return this.#init.registry.list().filter((record) => record.owner === this.#init.peerId);
  }

  #machine(name: string): Machine {
    const record = this.#local(name);
    const machine = this.#running.get(name);
    if (!machine) throw new ApiError('ERR_SPRITE_NOT_RUNNING', `sprite ${name} is ${record.state}`);
    return machine;
  }

  #takeWarm(): Machine | undefined {
    for (let machine = this.#pool.take(); machine; machine = this.#pool.take()) {
      if (machine.sandbox.alive) return machine;
      void this.#dispose(machine);
    }
    return undefined;
  }

  async #prepare(id: string, fresh: boolean): Promise<Machine> {
    const { config, volumes, image, toolsDir, peerKey } = this.#init;
    const volume = fresh ? await volumes.create(id, image) : volumes.open(id);
    const machine: Machine = { sandbox: undefined as unknown as Sandbox, name: undefined, mounts: undefined };
    try {
      machine.sandbox = await Sandbox.prepare({
        dir: this.#spriteDir(id), id, volume, ids: { hostId: config.sprite.rootHostId, size: 65536 },
        cgroupPath: `/sprites/${peerKey}/${id}`, limits: config.sprite.limits, toolsDir, httpPort: config.sprite.httpPort,
        privateDirs: [config.dataDir],
        ...this.#insideRequests(machine),
        onCrash: (reason) => this.#crashed(machine, reason),
      });
      if (canCheckpoint(volume)) {
        machine.mounts = new CheckpointMounts({ volume, target: machine.sandbox, logger: this.#init.logger.child({ component: 'checkpoint-mounts', id }) });
      }
    } catch (error) {
      if (fresh) await volumes.remove(id);
      throw error;
    }
    return machine;
  }

  #crashed(machine: Machine, reason: string): void {
    const { name } = machine;
    this.#init.logger.warn('sprite-init exited', { sprite: name ?? null, id: machine.sandbox.id, reason });
    void machine.mounts?.close();
    if (name === undefined || this.#running.get(name) !== machine) return;
    this.#running.delete(name);
    this.#init.registry.setState(name, 'failed', reason);
  }

  /** Stops a machine's sandbox, then lets the storage daemon stop serving its checkpoint mounts. */
  async #halt(machine: Machine): Promise<void> {
    try {
      await machine.sandbox.stop();
    } finally {
      await machine.mounts?.close();
    }
  }

  /** Mounts a running machine's newest checkpoints; a failure is logged, never the caller's failure. */
  async #syncMounts(machine: Machine | undefined): Promise<void> {
    await machine?.mounts?.sync().catch((error: unknown) => {
      this.#init.logger.warn('checkpoint mounts not updated', { sprite: machine.name ?? null, error: (error as Error).message });
    });
  }

  /** What code inside a machine may ask of the peer: checkpoints of its own sprite, nothing else. */
  #insideRequests(machine: Machine): Pick<SandboxInit, 'requests' | 'onRequestError'> {
    const name = (): string => {
      if (machine.name === undefined || this.#running.get(machine.name) !== machine) throw new ApiError('ERR_SPRITE_NOT_RUNNING', 'this sprite is not running');
      return machine.name;
    };
    return {
      requests: {
        createCheckpoint: (comment) => this.#checkpoint(name(), comment, machine),
        listCheckpoints: () => this.checkpoints(name()),
      },
      onRequestError: (request, error) => {
        this.#init.logger.warn('request from inside a sprite failed', { sprite: machine.name ?? null, op: request.op, error: (error as Error).message });
      },
    };
  }

  async #dispose(machine: Machine): Promise<void> {
    await this.#halt(machine).catch(() => undefined);
    await this.#init.volumes.remove(machine.sandbox.id);
    await rm(this.#spriteDir(machine.sandbox.id), { recursive: true, force: true });
  }

  /** Cleans what a killed peer left: sandboxes' mounts and cgroups, and pooled sprites nobody owns. */
  async #sweep(): Promise<void> {
    const owned = new Set(this.#owned().map((record) => record.id));
    const dirs = await readdir(join(this.#init.config.dataDir, 'sprites')).catch(() => [] as string[]);
    for (const id of dirs) {
      const paths = sandboxPaths(this.#spriteDir(id));
      await new ControlClient(paths.control).call({ op: 'shutdown' }, 5000).catch(() => undefined);
      await unmountPath(join(paths.ns, 'net'));
      await unmountPath(join(paths.ns, 'user'));
      await unmountPath(paths.rootfs);
      await removeCgroups(`/sprites/${this.#init.peerKey}/${id}`);
      await rm(paths.run, { recursive: true, force: true });
      if (!owned.has(id)) {
        await this.#init.volumes.remove(id);
        await rm(this.#spriteDir(id), { recursive: true, force: true });
      }
    }
  }

  #spriteDir(id: string): string {
    return join(this.#init.config.dataDir, 'sprites', id);
  }

  async #exclusive<T>(name: string, work: () => Promise<T>): Promise<T> {
    while (this.#busy.has(name)) await this.#busy.get(name)!.catch(() => undefined);
    const job = work();
    this.#busy.set(name, job);
    try {
      return await job;
    } finally {
      this.#busy.delete(name);
    }
  }
}

function newId(): string {
  return randomBytes(5).toString('hex');
}
