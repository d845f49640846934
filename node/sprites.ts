import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ControlClient, Sandbox, canCheckpoint, removeCgroups, sandboxPaths, unmountPath, type CheckpointInfo, type CheckpointVolume, type SandboxInit,
  type VolumeStore,
} from '../vm/index.ts';
import { CheckpointMounts } from './checkpoint-mounts.ts';
import type { PeerConfig } from './config.ts';
import { PeerError } from './errors.ts';
import type { Logger } from '../vm/index.ts';
import { checkSpriteName } from './names.ts';
import { WarmPool, type PoolStatus } from './pool.ts';
import { mirrorServices, restoreServices } from './services-mirror.ts';
import type { SpriteRecord, SpriteRegistry } from './records/index.ts';

/** What the sprite manager needs from the peer. */
export interface SpriteManagerInit {
  config: Readonly<PeerConfig>;
  registry: SpriteRegistry;
  volumes: VolumeStore;
  /** Path of the base image new sprites are cloned from. */
  image: string;
  /** The image volume of a named base image; throws ERR_IMAGE_NOT_FOUND. */
  images: (name: string) => string;
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
  /** Stops mirroring its service definitions into the record (while it runs here). */
  unmirror?: () => void;
  /** Its newest checkpoints mounted inside it (volumes without checkpoints: none). */
  mounts: CheckpointMounts | undefined;
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
  #unwatch: (() => void) | undefined;
  #closed = false;

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

  /**
   * Cleans up after a previous run, restarts sprites that were running, and starts warming the
   * pool. Call it once the replica has caught up with the mesh: a sprite another peer took over
   * while this one was away must show its new owner by then.
   */
  async start(): Promise<void> {
    this.#unwatch = this.#init.registry.watch((name) => this.#recordChanged(name));
    await this.#sweep();
    this.#pool.start();
    for (const record of this.#owned()) {
      // A warm sprite's memory went with the previous run: it is cold now, and wakes on use.
      if (record.state === 'warm') this.#init.registry.setState(record.name, this.#init.peerId, 'cold');
      if (record.state !== 'running') continue;
      this.#init.registry.setState(record.name, this.#init.peerId, 'stopped');
      void this.startSprite(record.name).catch((error: unknown) => {
        this.#init.logger.error('restart after peer start failed', { sprite: record.name, error: (error as Error).message });
      });
    }
  }

  /** Stops every sandbox (records stay, so they come back on the next start) and empties the pool. */
  async stop(): Promise<void> {
    this.#unwatch?.();
    await this.#pool.stop();
    await Promise.allSettled([...this.#running.keys()].map((name) => this.#halt(this.#untrack(name)!)));
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

  /**
   * Creates a sprite of `org`: a warm sandbox when one is ready (else cold or ERR_POOL_EMPTY), named
   * and started. With `image` (a built base image) its disk is a clone of that image, made cold.
   */
  async create(name: string, org: string, image?: string): Promise<SpriteRecord> {
    checkSpriteName(name);
    if (this.#closed) throw new PeerError('ERR_PEER_DRAINING', 'this peer is draining and takes no new sprites');
    if (this.#init.registry.get(name)) throw new PeerError('ERR_NAME_TAKEN', `a sprite named ${name} exists`);
    const base = image === undefined ? undefined : this.#init.images(image);
    return this.#exclusive(name, async () => {
      if (this.#init.registry.get(name)) throw new PeerError('ERR_NAME_TAKEN', `a sprite named ${name} exists`);
      // The warm pool holds the default image only.
      let machine = base === undefined ? this.#takeWarm() : await this.#prepare(newId(), true, base);
      if (!machine) {
        if (this.#init.config.pool.fallback === 'fail') throw new PeerError('ERR_POOL_EMPTY', 'the warm pool is empty; try again shortly');
        this.#coldCreates += 1;
        machine = await this.#prepare(newId(), true);
      }
      const now = new Date().toISOString();
      const record: SpriteRecord = {
        name, id: machine.sandbox.id, state: 'running', owner: this.#init.peerId, org, epoch: 1, volume: this.#init.config.storage.objectStore,
        httpPort: this.#init.config.sprite.httpPort, created: now, updated: now, services: [],
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
        this.#track(name, machine);
        await this.#syncMounts(machine);
        return record;
      } catch (error) {
        this.#init.registry.remove(name, this.#init.peerId);
        await this.#dispose(machine);
        throw error;
      }
    });
  }

  /** All records. */
  list(): SpriteRecord[] {
    return this.#init.registry.list();
  }

  /** One record, or undefined. */
  lookup(name: string): SpriteRecord | undefined {
    return this.#init.registry.get(name);
  }

  /** One record; throws ERR_SPRITE_NOT_FOUND. */
  get(name: string): SpriteRecord {
    const record = this.#init.registry.get(name);
    if (!record) throw new PeerError('ERR_SPRITE_NOT_FOUND', `no sprite named ${name}`);
    return record;
  }

  /** Stops a sprite and deletes its disk, directory and record. */
  async destroy(name: string): Promise<void> {
    const record = this.owned(name);
    await this.#exclusive(name, async () => {
      const machine = this.#untrack(name);
      if (machine) await this.#halt(machine);
      await this.#init.volumes.remove(record.id);
      await rm(this.#spriteDir(record.id), { recursive: true, force: true });
      this.#init.registry.remove(name, this.#init.peerId);
    });
  }

  /**
   * Takes over a sprite whose owner is down: mounts its disk from the object store (the lease
   * refuses while the old owner still holds it), claims the record with the next epoch, and starts
   * it here. The old owner, when it returns, sees the higher epoch and drops its copy.
   */
  async adopt(name: string, options: { start?: boolean } = {}): Promise<SpriteRecord> {
    return this.#exclusive(name, async () => {
      const seen = this.get(name);
      if (seen.owner === this.#init.peerId) return seen;
      const store = this.#init.config.storage.objectStore;
      if (seen.volume !== store) {
        throw new PeerError('ERR_SPRITE_UNRECOVERABLE', `sprite ${name}'s peer ${seen.owner} is down and its disk is in ${seen.volume ?? 'that peer\'s local storage'}, not in this peer's store`);
      }
      if (options.start === false) {
        // Not running where it was: a sleeping sprite stays asleep (it wakes on use), a stopped one stopped.
        const state = seen.state === 'running' || seen.state === 'warm' ? 'cold' : seen.state;
        const claimed = this.#init.registry.claim(seen, this.#init.peerId, state);
        if (!claimed) throw new PeerError('ERR_SPRITE_ELSEWHERE', `sprite ${name} was taken over by another peer first`);
        return claimed;
      }
      let machine: Machine;
      try {
        await restoreServices(sandboxPaths(this.#spriteDir(seen.id)).servicesFile, this.#init.registry.services(name));
        machine = await this.#prepare(seen.id, false);
      } catch (error) {
        await this.#init.volumes.forget(seen.id).catch(() => undefined);
        throw new PeerError('ERR_SPRITE_UNRECOVERABLE', `sprite ${name}'s peer ${seen.owner} is down and its disk cannot be taken over yet: ${(error as Error).message}`, { cause: error });
      }
      const claimed = this.#init.registry.claim(seen, this.#init.peerId, 'running');
      if (!claimed) {
        await this.#drop(machine);
        throw new PeerError('ERR_SPRITE_ELSEWHERE', `sprite ${name} was taken over by another peer first`);
      }
      machine.name = name;
      this.#init.logger.info('took over sprite', { sprite: name, from: seen.owner, epoch: claimed.epoch });
      try {
        await machine.sandbox.start(name);
      } catch (error) {
        await this.#halt(machine);
        this.#init.registry.setState(name, this.#init.peerId, 'failed', (error as Error).message);
        throw error;
      }
      this.#track(name, machine);
      await this.#syncMounts(machine);
      return claimed;
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
    const record = this.owned(name);
    if ((record.state === 'stopped' && !allow.stopped) || (record.state === 'failed' && !allow.failed)) {
      return Promise.reject(new PeerError('ERR_SPRITE_NOT_RUNNING', `sprite ${name} is ${record.state}; \`sprite start ${name}\` starts it`));
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
    const record = this.owned(name);
    const running = this.#running.get(name);
    if (running) {
      if (!running.sandbox.frozen) return undefined;
      await running.sandbox.thaw();
      running.since = Date.now();
      this.#init.registry.setState(name, this.#init.peerId, 'running');
      return 'resumed';
    }
    await restoreServices(sandboxPaths(this.#spriteDir(record.id)).servicesFile, this.#init.registry.services(name));
    const machine = await this.#prepare(record.id, false);
    machine.name = name;
    try {
      await machine.sandbox.start(name);
    } catch (error) {
      await this.#halt(machine);
      throw error;
    }
    machine.since = Date.now();
    this.#track(name, machine);
    this.#init.registry.setState(name, this.#init.peerId, 'running');
    await this.#syncMounts(machine);
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
      this.#init.registry.setState(name, this.#init.peerId, 'warm');
      if (idle()) return true;
      await machine.sandbox.thaw();
      this.#init.registry.setState(name, this.#init.peerId, 'running');
      return false;
    });
  }

  /** Cold sleep: stops a sprite in warm sleep (its disk is flushed and unmounted, its memory freed). */
  async sleepCold(name: string): Promise<boolean> {
    return this.#exclusive(name, async () => {
      const machine = this.#running.get(name);
      if (!machine?.sandbox.frozen) return false;
      this.#untrack(name);
      await this.#halt(machine);
      this.#init.registry.setState(name, this.#init.peerId, 'cold');
      return true;
    });
  }

  /** Stops a sprite's processes and unmounts its disk; the record stays as stopped. */
  async stopSprite(name: string): Promise<SpriteRecord> {
    this.owned(name);
    return this.#exclusive(name, async () => {
      const machine = this.#untrack(name);
      if (machine) await this.#halt(machine);
      this.#init.registry.setState(name, this.#init.peerId, 'stopped');
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
      if (from && this.#running.get(name) !== from) throw new PeerError('ERR_SPRITE_NOT_RUNNING', `sprite ${name} is stopping`);
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
      const machine = this.#untrack(name);
      if (machine) await this.#halt(machine);
      // A sprite in cold sleep stays asleep on the restored disk.
      if (machine || this.get(name).state !== 'cold') this.#init.registry.setState(name, this.#init.peerId, 'stopped');
      await volume.restore(id);
      return machine !== undefined;
    });
    return wasRunning ? this.startSprite(name) : this.get(name);
  }

  #checkpointVolume(name: string): CheckpointVolume {
    const volume = this.#init.volumes.open(this.owned(name).id);
    if (!canCheckpoint(volume)) throw new PeerError('ERR_BAD_REQUEST', 'this peer\'s volumes do not support checkpoints');
    return volume;
  }

  async #requireCheckpoint(volume: CheckpointVolume, id: string): Promise<void> {
    if (!(await volume.checkpoints()).some((c) => c.id === id)) throw new PeerError('ERR_CHECKPOINT_NOT_FOUND', `no checkpoint ${id}`);
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
    return sandboxPaths(this.#spriteDir(this.owned(name).id)).initLog;
  }

  /** Host path of a service's log (the file may not exist yet). */
  serviceLog(name: string, service: string): string {
    return join(sandboxPaths(this.#spriteDir(this.owned(name).id)).spriteDir, 'logs/services', `${service}.log`);
  }

  /** The record of a sprite this peer owns; throws ERR_SPRITE_NOT_FOUND or ERR_SPRITE_ELSEWHERE. */
  owned(name: string): SpriteRecord {
    const record = this.get(name);
    if (record.owner !== this.#init.peerId) {
      const api = this.#init.peerApi?.(record.owner);
      throw new PeerError('ERR_SPRITE_ELSEWHERE', `sprite ${name} runs on peer ${record.owner}${api ? ` (API ${api})` : ''}`);
    }
    return record;
  }

  #owned(): SpriteRecord[] {
    return this.#init.registry.list().filter((record) => record.owner === this.#init.peerId);
  }

  #machine(name: string): Machine {
    const record = this.owned(name);
    const machine = this.#running.get(name);
    if (!machine || machine.sandbox.frozen) throw new PeerError('ERR_SPRITE_NOT_RUNNING', `sprite ${name} is ${record.state}`);
    return machine;
  }

  /** Marks a sprite running here and mirrors its service definitions into its record. */
  #track(name: string, machine: Machine): void {
    this.#running.set(name, machine);
    const file = sandboxPaths(this.#spriteDir(machine.sandbox.id)).servicesFile;
    machine.unmirror = mirrorServices(file, (text) => this.#init.registry.setServices(name, this.#init.peerId, text));
  }

  /** Forgets a running sprite (the caller stops it); returns it, if it ran. */
  #untrack(name: string): Machine | undefined {
    const machine = this.#running.get(name);
    this.#running.delete(name);
    machine?.unmirror?.();
    return machine;
  }

  #takeWarm(): Machine | undefined {
    for (let machine = this.#pool.take(); machine; machine = this.#pool.take()) {
      if (machine.sandbox.alive) return machine;
      void this.#dispose(machine);
    }
    return undefined;
  }

  /** A machine for volume `id`: a new disk (cloned from image volume `base`, else the default image) when `fresh`. */
  async #prepare(id: string, fresh: boolean, base?: string): Promise<Machine> {
    const { config, volumes, image, toolsDir, peerKey } = this.#init;
    const volume = !fresh ? volumes.open(id) : base === undefined ? await volumes.create(id, image) : await volumes.createFromImage(id, base);
    const machine: Machine = { sandbox: undefined as unknown as Sandbox, name: undefined, mounts: undefined, since: Date.now() };
    try {
      machine.sandbox = await Sandbox.prepare({
        dir: this.#spriteDir(id), id, volume, ids: { hostId: config.sprite.rootHostId, size: 65536 },
        cgroupPath: `/sprites/${peerKey}/${id}`, limits: config.sprite.limits, toolsDir, httpPort: config.sprite.httpPort,
        privateDirs: [config.dataDir], compileCacheDir: join(config.dataDir, 'cache', 'init'),
        ...this.#insideRequests(machine),
        onCrash: (reason) => this.#crashed(machine, reason),
      });
      if (canCheckpoint(volume)) {
        machine.mounts = new CheckpointMounts({ volume, target: machine.sandbox, logger: this.#init.logger.child({ component: 'checkpoint-mounts', id }) });
      }
    } catch (error) {
      // A failed warm-up leaves nothing behind; a sprite that exists keeps its directory (its services live there).
      if (fresh) {
        await volumes.remove(id).catch(() => undefined);
        await rm(this.#spriteDir(id), { recursive: true, force: true }).catch(() => undefined);
      }
      throw error;
    }
    return machine;
  }

  /**
   * Moves a sprite to another peer (drain): stops it here, flushes its disk to the store and gives
   * the lease up, then lets `adopt` ask the other peer to claim it (and start it if it ran). If that
   * fails the sprite comes back here as it was.
   */
  async handOff(name: string, adopt: (start: boolean) => Promise<void>): Promise<void> {
    const record = this.owned(name);
    const wasRunning = await this.#exclusive(name, async () => {
      const machine = this.#untrack(name);
      if (machine) await this.#halt(machine);
      await this.#init.volumes.forget(record.id);
      return machine !== undefined;
    });
    try {
      await adopt(wasRunning);
    } catch (error) {
      if (wasRunning) await this.startSprite(name).catch(() => undefined);
      throw error;
    }
    await rm(this.#spriteDir(record.id), { recursive: true, force: true });
  }

  /** Stops taking sprites: new creates here fail with ERR_PEER_DRAINING and the pool is emptied. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool.stop();
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Names of the sprites this peer owns. */
  ownedNames(): string[] {
    return this.#owned().map((record) => record.name);
  }

  /** A record changed: a sprite running here that another peer now owns (or that is gone) is dropped. */
  #recordChanged(name: string): void {
    const machine = this.#running.get(name);
    if (!machine) return;
    const record = this.#init.registry.get(name);
    if (record?.owner === this.#init.peerId && record.id === machine.sandbox.id) return;
    this.#untrack(name);
    this.#init.logger.warn('sprite taken over by another peer; dropping the local copy', { sprite: name, owner: record?.owner ?? null, epoch: record?.epoch ?? null });
    void this.#exclusive(name, () => this.#drop(machine));
  }

  /** Stops a sandbox and forgets its local disk copy without writing to the store (its lease is another peer's). */
  async #drop(machine: Machine): Promise<void> {
    await this.#halt(machine).catch((error: unknown) => this.#init.logger.warn('stopping a dropped sprite failed', { id: machine.sandbox.id, error: (error as Error).message }));
    await this.#init.volumes.forget(machine.sandbox.id).catch(() => undefined);
    await rm(this.#spriteDir(machine.sandbox.id), { recursive: true, force: true });
  }

  #crashed(machine: Machine, reason: string): void {
    const { name } = machine;
    this.#init.logger.warn('sprite-init exited', { sprite: name ?? null, id: machine.sandbox.id, reason });
    void machine.mounts?.close();
    if (name === undefined || this.#running.get(name) !== machine) return;
    this.#untrack(name);
    this.#init.registry.setState(name, this.#init.peerId, 'failed', reason);
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
      if (machine.name === undefined || this.#running.get(machine.name) !== machine) throw new PeerError('ERR_SPRITE_NOT_RUNNING', 'this sprite is not running');
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

  /**
   * Cleans what a killed peer left: sandboxes' mounts and cgroups, pooled sprites nobody owns, and
   * local copies of sprites another peer took over (whose disks must stay in the store).
   */
  async #sweep(): Promise<void> {
    const owned = new Set(this.#owned().map((record) => record.id));
    const elsewhere = new Set(this.#init.registry.list().filter((record) => record.owner !== this.#init.peerId).map((record) => record.id));
    const dirs = await readdir(join(this.#init.config.dataDir, 'sprites')).catch(() => [] as string[]);
    for (const id of dirs) {
      const paths = sandboxPaths(this.#spriteDir(id));
      await new ControlClient(paths.control).call({ op: 'shutdown' }, 5000).catch(() => undefined);
      await unmountPath(join(paths.ns, 'net'));
      await unmountPath(join(paths.ns, 'user'));
      await unmountPath(paths.rootfs);
      await removeCgroups(`/sprites/${this.#init.peerKey}/${id}`);
      await rm(paths.run, { recursive: true, force: true });
      if (owned.has(id)) continue;
      if (elsewhere.has(id)) await this.#init.volumes.forget(id);
      else await this.#init.volumes.remove(id);
      await rm(this.#spriteDir(id), { recursive: true, force: true });
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
