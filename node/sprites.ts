import { join } from 'node:path';
import type { CheckpointInfo, ControlClient, Egress, Limits, SpriteFirewall } from '../vm/index.ts';
import type { PoolStatus } from './pool.ts';
import type { SpriteDocs, SpriteRecord } from './records/index.ts';
import { limitsFor, type SpriteSpec } from './sprite-settings.ts';
import { SpriteCheckpoints, type CheckpointView } from './sprites/checkpoints.ts';
import { withEnvironment } from './sprites/environment.ts';
import { checkSprite, upgradeSprite, type SpriteHealth } from './sprites/health.ts';
import { SpriteLifecycle, type SleepCandidate } from './sprites/lifecycle.ts';
import { Machines, type MachinesInit } from './sprites/machines.ts';
import { Recovery } from './sprites/recovery.ts';
import { Takeover } from './sprites/takeover.ts';
import { SpritePolicies } from './sprites/policies.ts';
import { UsageMeter } from './sprites/usage.ts';
import type { QuotaGate } from './quotas.ts';
import { PolicyEnforcer } from './egress/enforcer.ts';
import { defaultPolicy } from './egress/policy-match.ts';

export type { SleepCandidate } from './sprites/lifecycle.ts';
export type { SpriteHealth } from './sprites/health.ts';

/** What the sprite manager needs from the peer. */
export interface SpriteManagerInit extends MachinesInit {
  /** The image volume of a named base image; throws ERR_IMAGE_NOT_FOUND. */
  images: (name: string) => string;
  /** The replicated per-sprite documents (policies, checkpoint lineage). */
  docs: SpriteDocs;
  /** This peer's egress, whose firewall and resolver enforce network policies; absent: off. */
  egress?: Egress;
  /** The orgs' quotas, asked before a create, a start and a checkpoint; absent: none. */
  quotas?: QuotaGate;
}

/**
 * Owns this peer's sprites: the warm pool, create/start/stop/destroy, sleep and wake, takeover and
 * hand-off, checkpoints and recovery. A front over the modules in node/sprites/, which share one
 * `Machines` (the sandboxes running here and the per-name lock).
 */
export class SpriteManager {
  readonly #init: SpriteManagerInit;
  readonly #machines: Machines;
  readonly #lifecycle: SpriteLifecycle;
  readonly #takeover: Takeover;
  readonly #checkpoints: SpriteCheckpoints;
  readonly #recovery: Recovery;
  readonly #policies: SpritePolicies;
  readonly #enforcer: PolicyEnforcer | undefined;
  readonly #usage: UsageMeter;
  #unwatch: (() => void) | undefined;

  constructor(init: SpriteManagerInit) {
    this.#init = init;
    const { config, registry, volumes, logger } = init;
    // The hooks run once a machine is prepared, by which time every module below exists.
    const machines = new Machines(init, {
      requests: (machine) => this.#checkpoints.insideRequests(machine),
      crashed: (machine, reason) => this.#recovery.crashed(machine, reason),
      limits: (id) => this.#policies.limits(id),
      network: async (name, firewall) => this.#enforcer?.apply(name, firewall),
    });
    const startSprite = (name: string): Promise<SpriteRecord> => this.startSprite(name);
    this.#machines = machines;
    const created = (id: string): void => this.#policies.initNetwork(id, defaultPolicy(config.sprite.egressDefaultPolicy));
    const usage = new UsageMeter({ machines, volumes, docs: init.docs, logger });
    this.#usage = usage;
    const quotas = init.quotas;
    this.#lifecycle = new SpriteLifecycle({ machines, config, registry, volumes, images: init.images, created, usage, quotas, logger });
    this.#takeover = new Takeover({ machines, config, registry, volumes, startSprite, logger });
    this.#checkpoints = new SpriteCheckpoints({ machines, volumes, docs: init.docs, startSprite, usage, quotas, logger });
    this.#recovery = new Recovery({ machines, config, registry, volumes, startSprite, logger });
    // Without a resources policy a sprite has the limits it was created with (within this peer's).
    const base = (id: string): Limits => limitsFor(registry.list().find((record) => record.id === id) ?? {}, config.sprite.limits);
    this.#enforcer = init.egress && new PolicyEnforcer({ egress: init.egress, policyOf: (name) => this.#policies.network(name), logger: logger.child({ component: 'egress' }) });
    const enforce = this.#enforcer && ((name: string, firewall: SpriteFirewall) => this.#enforcer!.apply(name, firewall));
    this.#policies = new SpritePolicies({ machines, docs: init.docs, limits: config.sprite.limits, base, enforce, logger });
  }

  /** The sprite's network, privileges and resources policies (the owner's view; see node/sprites/policies.ts). */
  get policies(): SpritePolicies {
    return this.#policies;
  }

  /**
   * Cleans up after a previous run, restarts sprites that were running, and starts warming the
   * pool. Call it once the replica has caught up with the mesh: a sprite another peer took over
   * while this one was away must show its new owner by then.
   */
  async start(): Promise<void> {
    await this.#enforcer?.start();
    this.#unwatch = this.#takeover.watch();
    await this.#recovery.sweep();
    this.#lifecycle.startPool();
    this.#recovery.restartRunning();
    this.#usage.start();
  }

  /** Stops every sandbox (records stay, so they come back on the next start) and empties the pool. */
  async stop(): Promise<void> {
    this.#unwatch?.();
    this.#usage.stop();
    await this.#lifecycle.stopPool();
    await this.#machines.stopAll();
    await this.#enforcer?.close();
  }

  /** Resolves once the pool is full. */
  poolFull(): Promise<void> {
    return this.#lifecycle.poolFull();
  }

  /** This peer's sprite limits: the default and the most a sprite may ask for. */
  get limits(): Readonly<Limits> {
    return this.#init.config.sprite.limits;
  }

  /** Sprites running on this peer now. */
  load(): number {
    return this.#machines.size;
  }

  /** Pool counters for `GET /v1/pool`. */
  poolStatus(): PoolStatus & { fallback: string; coldCreates: number } {
    return this.#lifecycle.poolStatus();
  }

  /**
   * Creates a sprite as `spec` asks: a warm sandbox when one is ready (else cold or ERR_POOL_EMPTY),
   * with its limits, named and started. With an image (a built base image) its disk is a clone of
   * that image, made cold. A full peer refuses (429) or, with `waitForCapacity`, waits for room.
   */
  async create(spec: SpriteSpec): Promise<SpriteRecord> {
    return this.#lifecycle.create(spec);
  }

  /** True when this peer takes sprites and has room under its capacity for one more. */
  hasRoom(): boolean {
    return this.#lifecycle.hasRoom();
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
    return this.#machines.get(name);
  }

  /** Stops a sprite and deletes its disk, directory, record and documents. */
  async destroy(name: string): Promise<void> {
    const { id } = this.#machines.owned(name);
    await this.#lifecycle.destroy(name);
    this.#policies.forget(id);
  }

  /**
   * Takes over a sprite whose owner is down: mounts its disk from the object store (the lease
   * refuses while the old owner still holds it), claims the record with the next epoch, and starts
   * it here (unless `start` is false). The old owner, when it returns, sees the higher epoch and
   * drops its copy.
   */
  adopt(name: string, options: { start?: boolean } = {}): Promise<SpriteRecord> {
    return this.#takeover.adopt(name, options);
  }

  /** Starts a stopped, failed or sleeping sprite on its existing disk; a running one is left alone. */
  startSprite(name: string): Promise<SpriteRecord> {
    return this.#lifecycle.startSprite(name);
  }

  /**
   * Wakes a sprite for use: thaws it from warm sleep, or starts it on its disk from cold sleep.
   * Concurrent callers share one wake. A stopped or failed sprite is refused with
   * ERR_SPRITE_NOT_RUNNING unless `allow` says otherwise. Resolves with 'resumed' when only thawed.
   */
  wake(name: string, allow: { stopped?: boolean; failed?: boolean } = {}): Promise<void | 'resumed'> {
    return this.#lifecycle.wake(name, allow);
  }

  /**
   * The control client of a sprite, woken first if it sleeps (see `wake`); execs and services
   * started through it get the sprite's environment.
   */
  async awake(name: string): Promise<ControlClient> {
    await this.wake(name);
    const { sandbox } = this.#machines.awake(name);
    return withEnvironment(sandbox.control, sandbox.paths.control, this.get(name).environment);
  }

  /** Stops a sprite's sandbox (if it runs) and starts a new one on its disk: services come back, on the current sprite-init. */
  restart(name: string): Promise<SpriteRecord> {
    return this.#lifecycle.restart(name);
  }

  /** Probes a sprite's sprite-init without waking it (see checkSprite). */
  check(name: string): Promise<SpriteHealth> {
    return checkSprite(this.#machines, name);
  }

  /** Makes a sprite run the peer's current sprite-init from its next start (see upgradeSprite). */
  upgrade(name: string): Promise<boolean> {
    return upgradeSprite(this.#machines, this.#lifecycle, name);
  }

  /** Local sprites awake or in warm sleep: what the idle timer walks. */
  sleepCandidates(): SleepCandidate[] {
    return this.#lifecycle.sleepCandidates();
  }

  /** Warm sleep: freezes an awake sprite if `idle()` still holds (and thaws it if use came meanwhile); true when it sleeps. */
  freeze(name: string, idle: () => boolean): Promise<boolean> {
    return this.#lifecycle.freeze(name, idle);
  }

  /** Cold sleep: stops a sprite in warm sleep (its disk is flushed and unmounted, its memory freed). */
  sleepCold(name: string): Promise<boolean> {
    return this.#lifecycle.sleepCold(name);
  }

  /** Stops a sprite's processes and unmounts its disk; the record stays as stopped. */
  stopSprite(name: string): Promise<SpriteRecord> {
    return this.#lifecycle.stopSprite(name);
  }

  /**
   * Checkpoints a sprite's disk (metadata only; its processes keep running). Its mount inside
   * follows in the background, so the API answers in checkpoint time.
   */
  checkpoint(name: string, comment = ''): Promise<CheckpointInfo> {
    return this.#checkpoints.create(name, comment);
  }

  /** Throws ERR_QUOTA_EXCEEDED when the sprite's org may take no checkpoint now (its checkpoint or storage quota). */
  checkpointQuota(name: string): void {
    this.#checkpoints.precheck(name);
  }

  /** A sprite's checkpoints with their lineage, oldest first. */
  checkpoints(name: string): Promise<CheckpointView[]> {
    return this.#checkpoints.views(name);
  }

  /** Deletes one checkpoint; throws ERR_CHECKPOINT_NOT_FOUND. */
  deleteCheckpoint(name: string, id: string): Promise<void> {
    return this.#checkpoints.delete(name, id);
  }

  /** Restores a sprite's disk to a checkpoint: stops it, points the disk at the checkpoint, and starts it again if it ran (`progress` hears each step). */
  restore(name: string, id: string, progress?: (step: string) => void): Promise<SpriteRecord> {
    return this.#checkpoints.restore(name, id, progress);
  }

  /** The control client of a running sprite; throws ERR_SPRITE_NOT_FOUND or ERR_SPRITE_NOT_RUNNING. */
  control(name: string): ControlClient {
    return this.#machines.awake(name).sandbox.control;
  }

  /** Host path of the socket that reaches the sprite's HTTP port. */
  httpSocket(name: string): string {
    return this.#machines.awake(name).sandbox.paths.http;
  }

  /** Host path of sprite-init's own log. */
  initLog(name: string): string {
    return this.#machines.paths(this.owned(name).id).initLog;
  }

  /** Host path of a service's log (the file may not exist yet). */
  serviceLog(name: string, service: string): string {
    return join(this.#machines.paths(this.owned(name).id).spriteDir, 'logs/services', `${service}.log`);
  }

  /** The record of a sprite this peer owns; throws ERR_SPRITE_NOT_FOUND or ERR_SPRITE_ELSEWHERE. */
  owned(name: string): SpriteRecord {
    return this.#machines.owned(name);
  }

  /**
   * Moves a sprite to another peer (drain): stops it here, flushes its disk to the store and gives
   * the lease up, then lets `adopt` ask the other peer to claim it (and start it if it ran). If that
   * fails the sprite comes back here as it was.
   */
  handOff(name: string, adopt: (start: boolean) => Promise<void>): Promise<void> {
    return this.#takeover.handOff(name, adopt);
  }

  /** Stops taking sprites: new creates here fail with ERR_PEER_DRAINING and the pool is emptied. */
  close(): Promise<void> {
    return this.#lifecycle.close();
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#lifecycle.closed;
  }

  /** Names of the sprites this peer owns. */
  ownedNames(): string[] {
    return this.#machines.ownedRecords().map((record) => record.name);
  }
}
