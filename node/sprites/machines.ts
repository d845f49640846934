import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Sandbox, canCheckpoint, removeCgroups, runtimeVersion, sandboxPaths, setLimits, type Limits, type Logger, type NetworkAttacher, type SandboxInit, type SpriteFirewall, type VolumeStore } from '../../vm/index.ts';
import type { PeerConfig } from '../config.ts';
import { PeerError } from '../errors.ts';
import { SPRITE_ID, type SpriteRecord, type SpriteRegistry, type SpriteState } from '../records/index.ts';
import { CheckpointMounts } from './checkpoint-mounts.ts';
import { mirrorServices, restoreServices } from './services-mirror.ts';

/** How long a stopping peer lets lifecycle operations under way finish before it stops their sandboxes anyway. */
const STOP_WAIT_MS = 30_000;

/** What this peer's machines are built from: the peer's config, records, volumes and identity. */
export interface MachinesInit {
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
  /** Gives each sandbox its veth and firewall chain as it is prepared; absent (egress off): loopback only. */
  egress?: NetworkAttacher;
  /** API URL of another peer, for messages that send the user there. */
  peerApi?: (peerId: string) => string | undefined;
  logger: Logger;
}

/** What a machine reports back while it runs: set once by the sprite manager. */
export interface MachineHooks {
  /** What code inside `machine` may ask of the peer. */
  requests(machine: Machine): Pick<SandboxInit, 'requests' | 'onRequestError'>;
  /** sprite-init of `machine` exited on its own (`reason` says how). */
  crashed(machine: Machine, reason: string): void;
  /** The limits a start of the sprite with volume `id` gets: those it was created with, or its resources policy's. */
  limits(id: string): Limits;
  /** Puts a sandbox's firewall under sprite `name`'s network policy, before it starts as that sprite. */
  network(name: string, firewall: SpriteFirewall): Promise<void>;
}

/** What the takeover, checkpoint and recovery modules share: the machines, and a way to start a sprite again. */
export interface SpritePartInit {
  machines: Machines;
  /** Starts a stopped, failed or sleeping sprite this peer owns (the lifecycle's start). */
  startSprite: (name: string) => Promise<SpriteRecord>;
  logger: Logger;
}

/** A sandbox and the name it got, if any (pooled sandboxes have none yet). */
export interface Machine {
  sandbox: Sandbox;
  name: string | undefined;
  /** Stops mirroring its service definitions into the record (while it runs here). */
  unmirror?: () => void;
  /** Its newest checkpoints mounted inside it (volumes without checkpoints: none). */
  mounts: CheckpointMounts | undefined;
  /** Wall-clock ms of its last start or wake: the idle timer counts from here at least. */
  since: number;
  /** The runtime version (sprite-init's code) its sandbox was started with. */
  version: string;
  /** The limits its sandbox was prepared with. */
  limits: Limits;
}

/**
 * This peer's machines: the sandboxes running here by sprite name, the per-name lock every
 * lifecycle step holds, the steps that build and tear a machine down, and this peer's view of
 * the records it owns. The lifecycle, takeover, checkpoint and recovery modules work through it.
 */
export class Machines {
  readonly #init: MachinesInit;
  readonly #hooks: MachineHooks;
  readonly #running = new Map<string, Machine>();
  /** Names with a lifecycle operation under way; a second one waits for the first. */
  readonly #busy = new Map<string, Promise<unknown>>();
  #stopping = false;

  constructor(init: MachinesInit, hooks: MachineHooks) {
    this.#init = init;
    this.#hooks = hooks;
  }

  /** This peer's id: the owner column of the records it owns. */
  get peerId(): string {
    return this.#init.peerId;
  }

  /**
   * Runs `work` once no other lifecycle operation on `name` is under way; the next one waits for it.
   * Throws ERR_PEER_STOPPING once the peer stops: a sprite started then would outlive the peer.
   */
  async exclusive<T>(name: string, work: () => Promise<T>): Promise<T> {
    for (;;) {
      if (this.#stopping) throw new PeerError('ERR_PEER_STOPPING', 'this peer is stopping; its sprites start again with it or on another peer');
      const current = this.#busy.get(name);
      if (!current) break;
      await current.catch(() => undefined);
    }
    const job = work();
    this.#busy.set(name, job);
    try {
      return await job;
    } finally {
      this.#busy.delete(name);
    }
  }

  /** The machine running `name` here (awake or frozen), or undefined. */
  running(name: string): Machine | undefined {
    return this.#running.get(name);
  }

  /** Every machine running here, by sprite name. */
  entries(): [string, Machine][] {
    return [...this.#running];
  }

  /** How many sprites run here. */
  get size(): number {
    return this.#running.size;
  }

  /** The awake machine of a sprite this peer owns; throws ERR_SPRITE_NOT_FOUND, ERR_SPRITE_ELSEWHERE or ERR_SPRITE_NOT_RUNNING. */
  awake(name: string): Machine {
    const record = this.owned(name);
    const machine = this.#running.get(name);
    if (!machine || machine.sandbox.frozen) throw new PeerError('ERR_SPRITE_NOT_RUNNING', `sprite ${name} is ${record.state}`);
    return machine;
  }

  /** Marks a sprite running here and mirrors its service definitions into its record. */
  track(name: string, machine: Machine): void {
    this.#running.set(name, machine);
    const file = this.paths(machine.sandbox.id).servicesFile;
    machine.unmirror = mirrorServices(file, (text) => this.#init.registry.setServices(name, this.#init.peerId, text));
  }

  /** Forgets a running sprite (the caller stops it); returns it, if it ran. */
  untrack(name: string): Machine | undefined {
    const machine = this.#running.get(name);
    this.#running.delete(name);
    machine?.unmirror?.();
    return machine;
  }

  /**
   * A machine for volume `id`: a new disk (cloned from image volume `base`, else the default image)
   * when `fresh`; `limits` default to the operator's.
   */
  async prepare(id: string, fresh: boolean, base?: string, limits: Limits = this.#init.config.sprite.limits): Promise<Machine> {
    const { config, volumes, image, toolsDir, peerKey } = this.#init;
    const volume = !fresh ? volumes.open(id) : base === undefined ? await volumes.create(id, image) : await volumes.createFromImage(id, base);
    const machine: Machine = { sandbox: undefined as unknown as Sandbox, name: undefined, mounts: undefined, since: Date.now(), version: '', limits };
    try {
      // Read just before sprite-init starts from the same files.
      machine.version = await runtimeVersion();
      machine.sandbox = await Sandbox.prepare({
        dir: this.dir(id), id, volume, ids: { hostId: config.sprite.rootHostId, size: 65536 },
        cgroupPath: `/sprites/${peerKey}/${id}`, limits, toolsDir, httpPort: config.sprite.httpPort,
        privateDirs: [config.dataDir], compileCacheDir: join(config.dataDir, 'cache', 'init'), network: this.#init.egress,
        ...this.#hooks.requests(machine),
        onCrash: (reason) => this.#hooks.crashed(machine, reason),
      });
      if (canCheckpoint(volume)) {
        machine.mounts = new CheckpointMounts({ volume, target: machine.sandbox, logger: this.#init.logger.child({ component: 'checkpoint-mounts', id }) });
      }
    } catch (error) {
      // A failed warm-up leaves nothing behind; a sprite that exists keeps its directory (its services live there).
      if (fresh) {
        await volumes.remove(id).catch(() => undefined);
        await rm(this.dir(id), { recursive: true, force: true }).catch(() => undefined);
      }
      throw error;
    }
    return machine;
  }

  /**
   * A machine for the existing disk of sprite `name` (volume `id`), with its mirrored service
   * definitions put in place first: a peer new to the sprite starts the same services.
   */
  async load(name: string, id: string): Promise<Machine> {
    await restoreServices(this.paths(id).servicesFile, this.#init.registry.services(name));
    return this.prepare(id, false, undefined, this.#hooks.limits(id));
  }

  /**
   * Starts a prepared machine as sprite `name` with the sprite's memory and CPU limits, tracks it
   * and records it running with its runtime version; on failure the caller stops it.
   */
  async run(machine: Machine, name: string): Promise<void> {
    machine.name = name;
    // A pool sandbox was prepared with the peer's limits: it could not know whose it would be.
    const limits = this.#hooks.limits(machine.sandbox.id);
    if (limits.memoryBytes !== machine.limits.memoryBytes || limits.cpus !== machine.limits.cpus) {
      await setLimits(this.cgroup(machine.sandbox.id), limits);
      machine.limits = limits;
    }
    const firewall = machine.sandbox.network?.firewall;
    if (firewall) await this.#hooks.network(name, firewall);
    await machine.sandbox.start(name);
    machine.since = Date.now();
    this.track(name, machine);
    this.#init.registry.started(name, this.#init.peerId, machine.version);
  }

  /** Stops a machine's sandbox, then lets the storage daemon stop serving its checkpoint mounts. */
  async halt(machine: Machine): Promise<void> {
    try {
      await machine.sandbox.stop();
    } finally {
      await machine.mounts?.close();
    }
  }

  /** Stops a machine and deletes its disk and directory (a pooled or failed new sprite). */
  async dispose(machine: Machine): Promise<void> {
    await this.halt(machine).catch(() => undefined);
    await this.#init.volumes.remove(machine.sandbox.id);
    await rm(this.dir(machine.sandbox.id), { recursive: true, force: true });
  }

  /** Stops a sandbox and forgets its local disk copy without writing to the store (its lease is another peer's). */
  async drop(machine: Machine): Promise<void> {
    await this.halt(machine).catch((error: unknown) => this.#init.logger.warn('stopping a dropped sprite failed', { id: machine.sandbox.id, error: (error as Error).message }));
    await this.#init.volumes.forget(machine.sandbox.id).catch(() => undefined);
    await rm(this.dir(machine.sandbox.id), { recursive: true, force: true });
  }

  /**
   * Stops every sandbox running here and removes this peer's cgroups; records stay. New lifecycle
   * operations are refused from now on, and those under way (a start, a wake) finish first, for at
   * most `STOP_WAIT_MS`, so none leaves a sandbox running after the peer.
   */
  async stopAll(): Promise<void> {
    this.#stopping = true;
    const deadline = Date.now() + STOP_WAIT_MS;
    while (this.#busy.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...this.#busy.values()]), new Promise((resolve) => setTimeout(resolve, deadline - Date.now()).unref())]);
    }
    await Promise.allSettled([...this.#running.keys()].map((name) => this.halt(this.untrack(name)!)));
    await removeCgroups(this.cgroup());
  }

  /** Mounts a running machine's newest checkpoints; a failure is logged, never the caller's failure. */
  async syncMounts(machine: Machine | undefined): Promise<void> {
    await machine?.mounts?.sync().catch((error: unknown) => {
      this.#init.logger.warn('checkpoint mounts not updated', { sprite: machine.name ?? null, error: (error as Error).message });
    });
  }

  /** Directory of the sprite or pooled sandbox with volume `id`. */
  dir(id: string): string {
    // Ids come from records other peers write: one that is not an id never becomes a path.
    if (!SPRITE_ID.test(id)) throw new PeerError('ERR_SPRITE_UNRECOVERABLE', `sprite id ${JSON.stringify(id.slice(0, 64))} is not an id`);
    return join(this.#init.config.dataDir, 'sprites', id);
  }

  /** Host paths of the sandbox with volume `id`. */
  paths(id: string): ReturnType<typeof sandboxPaths> {
    return sandboxPaths(this.dir(id));
  }

  /** The cgroup of the sandbox with volume `id`, or of all of this peer's sandboxes. */
  cgroup(id?: string): string {
    return id === undefined ? `/sprites/${this.#init.peerKey}` : `/sprites/${this.#init.peerKey}/${id}`;
  }

  /** One record; throws ERR_SPRITE_NOT_FOUND. */
  get(name: string): SpriteRecord {
    const record = this.#init.registry.get(name);
    if (!record) throw new PeerError('ERR_SPRITE_NOT_FOUND', `no sprite named ${name}`);
    return record;
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

  /** The records of every sprite this peer owns. */
  ownedRecords(): SpriteRecord[] {
    return this.#init.registry.list().filter((record) => record.owner === this.#init.peerId);
  }

  /** Sets the state (and reason) of a sprite this peer owns; another peer's record is left alone. */
  setState(name: string, state: SpriteState, reason?: string): void {
    this.#init.registry.setState(name, this.#init.peerId, state, reason);
  }
}
