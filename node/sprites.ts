import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ControlClient, Sandbox, canCheckpoint, removeCgroups, sandboxPaths, unmountPath, type CheckpointInfo, type CheckpointVolume, type VolumeStore,
} from '../vm/index.ts';
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
  /** Wall-clock ms of its last start or wake: the idle timer counts from here at least. */
  since: number;
}

/** A local sprite the idle timer may put to sleep: awake, or in warm sleep. */
export interface SleepCandidate {
  name: string;
  /** True in warm sleep. */
  frozen: boolean;
  /** Wall-clock ms of its last start or wake. */
  since: number;
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
  /** Wakes under way, shared by every caller. */
  readonly #waking = new Map<string, Promise<void | 'resumed'>>();
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
      // A warm sprite's memory went with the previous run: it is cold now, and wakes on use.
      if (record.state === 'warm') this.#init.registry.setState(record.name, 'cold');
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
    await Promise.allSettled([...this.#running.values()].map((machine) => machine.sandbox.stop()));
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
        machine.since = Date.now();
        this.#running.set(name, machine);
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
      if (machine) await machine.sandbox.stop();
      await this.#init.volumes.remove(record.id);
      await rm(this.#spriteDir(record.id), { recursive: true, force: true });
      this.#init.registry.remove(name);
    });
  }

  /** Starts a stopped, failed or sleeping sprite on its existing disk; a running one is left alone. */
  async startSprite(name: string): Promise<SpriteRecord> {
    await this.wake(name, { stopped: true, failed: true });
    return this.get(name);
  }

  /**
   * Wakes a sprite for use: thaws it from warm sleep, or starts it on its disk from cold sleep
   * (services start again). Concurrent callers share one wake. A user's stop is respected (and a
   * failed sprite needs a person) unless `stopped` / `failed` say otherwise: ERR_SPRITE_NOT_RUNNING.
   * Resolves with 'resumed' when the sprite was only thawed.
   */
  wake(name: string, allow: { stopped?: boolean; failed?: boolean } = {}): Promise<void | 'resumed'> {
    const machine = this.#running.get(name);
    if (machine && !machine.sandbox.frozen) return Promise.resolve();
    const record = this.#local(name);
    if ((record.state === 'stopped' && !allow.stopped) || (record.state === 'failed' && !allow.failed)) {
      return Promise.reject(new ApiError('ERR_SPRITE_NOT_RUNNING', `sprite ${name} is ${record.state}; \`sprite start ${name}\` starts it`));
    }
    let waking = this.#waking.get(name);
    if (!waking) {
      waking = this.#exclusive(name, () => this.#wakeNow(name)).finally(() => this.#waking.delete(name));
      this.#waking.set(name, waking);
    }
    return waking;
  }

  /** The control client of a sprite, woken first if it sleeps (see `wake`). */
  async awake(name: string): Promise<ControlClient> {
    await this.wake(name);
    return this.control(name);
  }

  async #wakeNow(name: string): Promise<void | 'resumed'> {
    const record = this.#local(name);
    const running = this.#running.get(name);
    if (running) {
      if (!running.sandbox.frozen) return undefined;
      await running.sandbox.thaw();
      running.since = Date.now();
      this.#init.registry.setState(name, 'running');
      return 'resumed';
    }
    const machine = await this.#prepare(record.id, false);
    machine.name = name;
    try {
      await machine.sandbox.start(name);
    } catch (error) {
      await machine.sandbox.stop();
      throw error;
    }
    machine.since = Date.now();
    this.#running.set(name, machine);
    this.#init.registry.setState(name, 'running');
    return undefined;
  }

  /** Local sprites awake or in warm sleep: what the idle timer walks. */
  sleepCandidates(): SleepCandidate[] {
    return [...this.#running].map(([name, machine]) => ({ name, frozen: machine.sandbox.frozen, since: machine.since }));
  }

  /**
   * Warm sleep: freezes an awake sprite if `idle()` still holds, and thaws it again if use came
   * while it froze (a request that raced the decision). Resolves true when it sleeps.
   */
  async freeze(name: string, idle: () => boolean): Promise<boolean> {
    return this.#exclusive(name, async () => {
      const machine = this.#running.get(name);
      if (!machine || machine.sandbox.frozen || !idle()) return false;
      // Frozen first, so from here on the proxy finds no socket and wakes the sprite instead.
      await machine.sandbox.freeze();
      this.#init.registry.setState(name, 'warm');
      if (idle()) return true;
      await machine.sandbox.thaw();
      this.#init.registry.setState(name, 'running');
      return false;
    });
  }

  /** Cold sleep: stops a sprite in warm sleep (its disk is flushed and unmounted, its memory freed). */
  async sleepCold(name: string): Promise<boolean> {
    return this.#exclusive(name, async () => {
      const machine = this.#running.get(name);
      if (!machine?.sandbox.frozen) return false;
      this.#running.delete(name);
      await machine.sandbox.stop();
      this.#init.registry.setState(name, 'cold');
      return true;
    });
  }

  /** Stops a sprite's processes and unmounts its disk; the record stays as stopped. */
  async stopSprite(name: string): Promise<SpriteRecord> {
    this.#local(name);
    return this.#exclusive(name, async () => {
      const machine = this.#running.get(name);
      this.#running.delete(name);
      if (machine) await machine.sandbox.stop();
      this.#init.registry.setState(name, 'stopped');
      return this.get(name);
    });
  }

  /** Checkpoints a sprite's disk (metadata only; its processes keep running). */
  async checkpoint(name: string, comment = ''): Promise<CheckpointInfo> {
    const volume = this.#checkpointVolume(name);
    return this.#exclusive(name, () => volume.checkpoint(comment));
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
  }

  /** Restores a sprite's disk to a checkpoint: stops it, points the disk at the checkpoint, and starts it again if it ran. */
  async restore(name: string, id: string): Promise<SpriteRecord> {
    const volume = this.#checkpointVolume(name);
    await this.#requireCheckpoint(volume, id);
    const wasRunning = await this.#exclusive(name, async () => {
      const machine = this.#running.get(name);
      this.#running.delete(name);
      if (machine) await machine.sandbox.stop();
      // A sprite in cold sleep stays asleep on the restored disk.
      if (machine || this.get(name).state !== 'cold') this.#init.registry.setState(name, 'stopped');
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
    if (!machine || machine.sandbox.frozen) throw new ApiError('ERR_SPRITE_NOT_RUNNING', `sprite ${name} is ${record.state}`);
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
    const machine: Machine = { sandbox: undefined as unknown as Sandbox, name: undefined, since: Date.now() };
    try {
      machine.sandbox = await Sandbox.prepare({
        dir: this.#spriteDir(id), id, volume, ids: { hostId: config.sprite.rootHostId, size: 65536 },
        cgroupPath: `/sprites/${peerKey}/${id}`, limits: config.sprite.limits, toolsDir, httpPort: config.sprite.httpPort,
        privateDirs: [config.dataDir], compileCacheDir: join(config.dataDir, 'cache', 'init'),
        onCrash: (reason) => this.#crashed(machine, reason),
      });
    } catch (error) {
      if (fresh) await volumes.remove(id);
      throw error;
    }
    return machine;
  }

  #crashed(machine: Machine, reason: string): void {
    const { name } = machine;
    this.#init.logger.warn('sprite-init exited', { sprite: name ?? null, id: machine.sandbox.id, reason });
    if (name === undefined || this.#running.get(name) !== machine) return;
    this.#running.delete(name);
    this.#init.registry.setState(name, 'failed', reason);
  }

  async #dispose(machine: Machine): Promise<void> {
    await machine.sandbox.stop().catch(() => undefined);
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
