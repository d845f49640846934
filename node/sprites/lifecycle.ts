import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { Logger, VolumeStore } from '../../vm/index.ts';
import type { PeerConfig } from '../config.ts';
import { PeerError } from '../errors.ts';
import { checkSpriteName } from '../names.ts';
import { WarmPool, type PoolStatus } from '../pool.ts';
import type { NewSpriteRecord, SpriteRecord, SpriteRegistry } from '../records/index.ts';
import { resourcesFor, type SpriteSpec } from '../sprite-settings.ts';
import { Capacity } from './capacity.ts';
import type { Machine, Machines } from './machines.ts';
import type { QuotaGate } from '../quotas.ts';
import type { UsageMeter } from './usage.ts';

/** What a sprite's lifecycle needs: the machines, the records it writes, and where images are. */
export interface LifecycleInit {
  machines: Machines;
  config: Readonly<PeerConfig>;
  registry: Pick<SpriteRegistry, 'get' | 'insert' | 'remove'>;
  volumes: Pick<VolumeStore, 'remove'>;
  /** The image volume of a named base image; throws ERR_IMAGE_NOT_FOUND. */
  images: (name: string) => string;
  /** A new sprite's record is in, its sandbox not started yet: its documents (the default network policy) go in here. */
  created(id: string): void;
  /** Keeps each sprite's stored bytes and checkpoints in its usage document. */
  usage: Pick<UsageMeter, 'measure'>;
  /** The orgs' quotas: a create and a start of a sprite that does not run ask first. */
  quotas?: QuotaGate;
  logger: Logger;
}

/** States of a sprite that do not count as running: starting it adds one to its org's running sprites. */
const NOT_RUNNING: ReadonlySet<string> = new Set(['cold', 'stopped', 'failed']);

/** A local sprite the idle timer may put to sleep: awake, or in warm sleep. */
export interface SleepCandidate {
  name: string;
  /** True in warm sleep. */
  frozen: boolean;
  /** Wall-clock ms of its last start or wake. */
  since: number;
}

/**
 * A sprite's life on this peer: created from the warm pool (or cold), started, stopped, put to
 * warm or cold sleep and woken (one wake per name, shared by every caller), destroyed.
 */
export class SpriteLifecycle {
  readonly #init: LifecycleInit;
  readonly #pool: WarmPool<Machine>;
  /** Wakes under way, shared by every caller. */
  readonly #waking = new Map<string, Promise<void | 'resumed'>>();
  readonly #capacity: Capacity;
  #coldCreates = 0;
  #closed = false;

  constructor(init: LifecycleInit) {
    this.#init = init;
    this.#capacity = new Capacity(init.config.sprite.capacity, () => init.machines.size);
    this.#pool = new WarmPool<Machine>({
      depth: init.config.pool.depth,
      concurrency: init.config.pool.concurrency,
      warm: () => init.machines.prepare(newId(), true),
      discard: (machine) => init.machines.dispose(machine),
      logger: init.logger.child({ component: 'pool' }),
    });
  }

  /** Starts warming the pool. */
  startPool(): void {
    this.#pool.start();
  }

  /** Empties the pool and stops warming it. */
  stopPool(): Promise<void> {
    return this.#pool.stop();
  }

  /** Resolves once the pool is full. */
  poolFull(): Promise<void> {
    return this.#pool.full();
  }

  /** Pool counters, the fallback when it is empty, and how many creates found it empty. */
  poolStatus(): PoolStatus & { fallback: string; coldCreates: number } {
    return { ...this.#pool.status(), fallback: this.#init.config.pool.fallback, coldCreates: this.#coldCreates };
  }

  /** Stops taking sprites: new creates fail with ERR_PEER_DRAINING and the pool is emptied. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool.stop();
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True when this peer has room for one more running sprite (see Capacity). */
  hasRoom(): boolean {
    return !this.#closed && this.#capacity.hasRoom();
  }

  /**
   * Creates a sprite as `spec` asks: a warm sandbox when one is ready (else cold or ERR_POOL_EMPTY),
   * with its limits, named and started. With an image (a built base image) its disk is a clone of
   * that image, made cold. A full peer refuses (429) or, with `waitForCapacity`, waits for room.
   */
  async create(spec: SpriteSpec): Promise<SpriteRecord> {
    const { config, registry } = this.#init;
    const { name, image } = spec;
    checkSpriteName(name);
    if (this.#closed) throw new PeerError('ERR_PEER_DRAINING', 'this peer is draining and takes no new sprites');
    if (registry.get(name)) throw new PeerError('ERR_NAME_TAKEN', `a sprite named ${name} exists`);
    const resources = resourcesFor(spec.config ?? {}, config.sprite.limits);
    const base = image === undefined ? undefined : this.#init.images(image);
    const admitted = this.#init.quotas?.admit(spec.org, 'create');
    try {
      const release = await this.#capacity.take(spec.waitForCapacity === true);
      try {
        const record = await this.#createNow(spec, resources, base);
        void this.#init.usage.measure(name);
        return record;
      } finally {
        release();
      }
    } finally {
      admitted?.();
    }
  }

  async #createNow(spec: SpriteSpec, resources: ReturnType<typeof resourcesFor>, base: string | undefined): Promise<SpriteRecord> {
    const { config, registry, machines } = this.#init;
    const { name, org } = spec;
    return machines.exclusive(name, async () => {
      if (registry.get(name)) throw new PeerError('ERR_NAME_TAKEN', `a sprite named ${name} exists`);
      // The warm pool holds the default image only.
      let machine = base === undefined ? this.#takeWarm() : await machines.prepare(newId(), true, base);
      if (!machine) {
        if (config.pool.fallback === 'fail') throw new PeerError('ERR_POOL_EMPTY', 'the warm pool is empty; try again shortly');
        this.#coldCreates += 1;
        machine = await machines.prepare(newId(), true);
      }
      const now = new Date().toISOString();
      const record: NewSpriteRecord = {
        name, id: machine.sandbox.id, state: 'running', owner: machines.peerId, org, epoch: 1, volume: config.storage.objectStore,
        httpPort: config.sprite.httpPort, created: now, updated: now, urlAuth: spec.urlAuth, labels: spec.labels, environment: spec.environment, ...resources,
      };
      try {
        registry.insert(record);
        this.#init.created(record.id);
      } catch (error) {
        await machines.dispose(machine);
        throw error;
      }
      try {
        await machines.run(machine, name);
        // No checkpoint mounts to sync: the volume is new (a clone starts with no checkpoints), and
        // a checkpoint taken from now on syncs them itself.
        return machines.get(name);
      } catch (error) {
        registry.remove(name, machines.peerId);
        await machines.dispose(machine);
        throw error;
      }
    });
  }

  /** Stops a sprite and deletes its disk, directory and record. */
  async destroy(name: string): Promise<void> {
    const { machines } = this.#init;
    const record = machines.owned(name);
    await machines.exclusive(name, async () => {
      const machine = machines.untrack(name);
      if (machine) await machines.halt(machine);
      await this.#init.volumes.remove(record.id);
      await rm(machines.dir(record.id), { recursive: true, force: true });
      this.#init.registry.remove(name, machines.peerId);
    });
  }

  /** Starts a stopped, failed or sleeping sprite on its existing disk; a running one is left alone. */
  async startSprite(name: string): Promise<SpriteRecord> {
    await this.wake(name, { stopped: true, failed: true });
    return this.#init.machines.get(name);
  }

  /** Stops a sprite's processes and unmounts its disk; the record stays as stopped. */
  async stopSprite(name: string): Promise<SpriteRecord> {
    const { machines } = this.#init;
    machines.owned(name);
    return machines.exclusive(name, async () => {
      const machine = machines.untrack(name);
      if (machine) await machines.halt(machine);
      machines.setState(name, 'stopped');
      // Its disk is flushed now: what it holds in the store is final until it runs again.
      void this.#init.usage.measure(name);
      return machines.get(name);
    });
  }

  /**
   * Wakes a sprite for use: thaws it from warm sleep, or starts it on its disk from cold sleep
   * (services start again). Concurrent callers share one wake. A user's stop is respected (and a
   * failed sprite needs a person) unless `stopped` / `failed` say otherwise: ERR_SPRITE_NOT_RUNNING.
   * Resolves with 'resumed' when the sprite was only thawed.
   */
  wake(name: string, allow: { stopped?: boolean; failed?: boolean } = {}): Promise<void | 'resumed'> {
    const { machines } = this.#init;
    const machine = machines.running(name);
    if (machine && !machine.sandbox.frozen) return Promise.resolve();
    const record = machines.owned(name);
    if ((record.state === 'stopped' && !allow.stopped) || (record.state === 'failed' && !allow.failed)) {
      return Promise.reject(new PeerError('ERR_SPRITE_NOT_RUNNING', `sprite ${name} is ${record.state}; \`sprite start ${name}\` starts it`));
    }
    let waking = this.#waking.get(name);
    if (!waking) {
      waking = machines.exclusive(name, () => this.#wakeNow(name)).finally(() => this.#waking.delete(name));
      this.#waking.set(name, waking);
    }
    return waking;
  }

  /**
   * Restarts a sprite: stops its sandbox if it runs (awake or asleep) and starts a new one on its
   * disk, so its services start again and it runs the peer's current sprite-init. A sprite that did
   * not run is started. If the new sandbox fails, the sprite is recorded failed with the reason.
   */
  async restart(name: string): Promise<SpriteRecord> {
    const { machines } = this.#init;
    machines.owned(name);
    return machines.exclusive(name, async () => {
      const machine = machines.untrack(name);
      const admitted = machine ? undefined : this.#admitStart(name);
      if (machine) await machines.halt(machine);
      try {
        await this.#startOnDisk(name);
      } catch (error) {
        machines.setState(name, 'failed', `restart failed: ${(error as Error).message}`);
        throw error;
      } finally {
        admitted?.();
      }
      return machines.get(name);
    });
  }

  /** The wake itself, under the sprite's lock: a thaw, or a start on its disk. */
  async #wakeNow(name: string): Promise<void | 'resumed'> {
    const { machines } = this.#init;
    const running = machines.running(name);
    if (running) {
      if (!running.sandbox.frozen) return undefined;
      await running.sandbox.thaw();
      running.since = Date.now();
      machines.setState(name, 'running');
      return 'resumed';
    }
    const admitted = this.#admitStart(name);
    try {
      await this.#startOnDisk(name);
    } finally {
      admitted?.();
    }
    return undefined;
  }

  /** Asks the quotas for a start of a sprite that is not counted as running (cold, stopped, failed); ERR_QUOTA_EXCEEDED when its org has no room. */
  #admitStart(name: string): (() => void) | undefined {
    const record = this.#init.machines.owned(name);
    return NOT_RUNNING.has(record.state) ? this.#init.quotas?.admit(record.org, 'start') : undefined;
  }

  /** Starts a sprite that does not run here in a new sandbox on its disk (under its lock); the record says running once it does. */
  async #startOnDisk(name: string): Promise<void> {
    const { machines } = this.#init;
    const machine = await machines.load(name, machines.owned(name).id);
    try {
      await machines.run(machine, name);
    } catch (error) {
      await machines.halt(machine);
      throw error;
    }
    await machines.syncMounts(machine);
  }

  /** Local sprites awake or in warm sleep: what the idle timer walks. */
  sleepCandidates(): SleepCandidate[] {
    return this.#init.machines.entries().map(([name, machine]) => ({ name, frozen: machine.sandbox.frozen, since: machine.since }));
  }

  /**
   * Warm sleep: freezes an awake sprite if `idle()` still holds, and thaws it again if use came
   * while it froze (a request that raced the decision). Resolves true when it sleeps.
   */
  async freeze(name: string, idle: () => boolean): Promise<boolean> {
    const { machines } = this.#init;
    return machines.exclusive(name, async () => {
      const machine = machines.running(name);
      if (!machine || machine.sandbox.frozen || !idle()) return false;
      // Frozen first, so from here on the proxy finds no socket and wakes the sprite instead.
      await machine.sandbox.freeze();
      machines.setState(name, 'warm');
      if (idle()) return true;
      await machine.sandbox.thaw();
      machines.setState(name, 'running');
      return false;
    });
  }

  /** Cold sleep: stops a sprite in warm sleep (its disk is flushed and unmounted, its memory freed). */
  async sleepCold(name: string): Promise<boolean> {
    const { machines } = this.#init;
    return machines.exclusive(name, async () => {
      const machine = machines.running(name);
      if (!machine?.sandbox.frozen) return false;
      machines.untrack(name);
      await machines.halt(machine);
      machines.setState(name, 'cold');
      void this.#init.usage.measure(name);
      return true;
    });
  }

  /** A live sandbox from the pool (dead ones are disposed of on the way), or undefined when none is ready. */
  #takeWarm(): Machine | undefined {
    for (let machine = this.#pool.take(); machine; machine = this.#pool.take()) {
      if (machine.sandbox.alive) return machine;
      void this.#init.machines.dispose(machine);
    }
    return undefined;
  }
}

/** A new volume id: 10 hex digits. */
function newId(): string {
  return randomBytes(5).toString('hex');
}
