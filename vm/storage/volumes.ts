import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VOLUMES_DEFAULTS } from './defaults.ts';
import { ObjectCache } from './device/cache.ts';
import { BlockDevice, type DeviceOptions } from './device/device.ts';
import { deleteVolumeMeta, loadVolume, volumePrefix, writeSnapshot } from './device/journal.ts';
import { Lease } from './device/lease.ts';
import { HEAD, MetaDb, type VersionRecord, type VolumeRecord, type VolumeState } from './device/meta-db.ts';
import { VolumeMetadata } from './device/metadata.ts';
import { StorageError, describe, hasCode } from './errors.ts';
import type { Logger } from '../logger.ts';
import type { ObjectStore } from './store/store.ts';

/** Options of the volume engine. */
export interface VolumesInit {
  /** Directory for the metadata database, the cache and dirty units. */
  dataDir: string;
  store: ObjectStore;
  logger: Logger;
  /** Stable owner id for leases. @default a random id kept in `<dataDir>/owner` */
  owner?: string;
  /** Unit size of new volumes, in bytes (a power of two, 64 KiB to 64 MiB). @default 4 MiB */
  unitSize?: number;
  /** Local cache budget in bytes, dirty units included. @default 10 GiB */
  cacheBytes?: number;
  /** Block device tunables. */
  device?: Partial<DeviceOptions>;
  /** Lease duration. @default 30000 */
  leaseTtlMs?: number;
  /** Re-read a lease before a commit when the last check is older than this. @default 1000 */
  leaseCheckMs?: number;
  /** Snapshot the metadata after this many log records. @default 256 */
  snapshotEvery?: number;
}

/** A checkpoint as callers see it. */
export interface Checkpoint {
  /** `v0`, `v1`, ... */
  id: string;
  version: number;
  comment: string;
  created: number;
  /** Units with data (each at most one unit size of stored bytes). */
  units: number;
}

/** What one volume holds in the object store (see Volumes.usage). */
export interface VolumeUsage {
  checkpoints: number;
  /** Bytes of the objects only this volume's versions reference (whole units). */
  bytes: number;
}

interface Held {
  metadata: VolumeMetadata;
  lease: Lease;
  device?: BlockDevice;
  /** Whether dirty units left by a previous run of this data dir are still valid (relaxed mode). */
  adoptDirty: boolean;
}

/**
 * The volume engine of one data dir: creates, opens (restoring from the object store when the
 * data dir has never seen the volume), checkpoints, restores, clones and removes volumes, and
 * gives each open volume a {@link BlockDevice}. It knows nothing of FUSE or mounts, so tests drive
 * it in-process. A volume is written only under its lease, which this engine renews.
 */
export class Volumes {
  readonly store: ObjectStore;
  readonly cache: ObjectCache;
  readonly db: MetaDb;
  readonly owner: string;
  readonly #init: VolumesInit;
  readonly #logger: Logger;
  readonly #held = new Map<string, Held>();
  readonly #opening = new Map<string, Promise<Held>>();
  #renewTimer: NodeJS.Timeout | undefined;

  private constructor(init: VolumesInit, db: MetaDb, cache: ObjectCache, owner: string) {
    this.#init = init;
    this.#logger = init.logger;
    this.store = init.store;
    this.db = db;
    this.cache = cache;
    this.owner = owner;
  }

  /** Opens the data dir: database, cache (loaded or wiped), owner id; starts lease renewal. */
  static async open(init: VolumesInit): Promise<Volumes> {
    const unitSize = init.unitSize ?? VOLUMES_DEFAULTS.unitSize;
    if (!Number.isInteger(Math.log2(unitSize)) || unitSize < 64 * 1024 || unitSize > 64 * 1024 * 1024) {
      throw new StorageError('ERR_STORAGE_CONFIG', `unit size must be a power of two from 64 KiB to 64 MiB, got ${unitSize}`);
    }
    await mkdir(join(init.dataDir, 'dirty'), { recursive: true });
    const owner = init.owner ?? (await ownerId(init.dataDir));
    const db = new MetaDb(join(init.dataDir, 'meta.db'));
    const cache = new ObjectCache({ dir: join(init.dataDir, 'cache'), budgetBytes: init.cacheBytes ?? VOLUMES_DEFAULTS.cacheBytes, logger: init.logger });
    await cache.start();
    const volumes = new Volumes(init, db, cache, owner);
    const ttl = init.leaseTtlMs ?? VOLUMES_DEFAULTS.leaseTtlMs;
    volumes.#renewTimer = setInterval(() => void volumes.renewOnce(), Math.max(100, ttl / 3));
    volumes.#renewTimer.unref();
    return volumes;
  }

  /** Unit size new volumes get. */
  get unitSize(): number {
    return this.#init.unitSize ?? VOLUMES_DEFAULTS.unitSize;
  }

  /** Renews every held lease once (the timer calls this; tests may too). */
  async renewOnce(): Promise<void> {
    for (const [id, held] of this.#held) {
      await held.lease.renew().catch((error) => {
        if (hasCode(error, 'ERR_LEASE_LOST')) this.#logger.error('volume lease lost', { volume: id, error: describe(error) });
        else this.#logger.warn('lease renewal failed', { volume: id, error: describe(error) });
      });
    }
  }

  /** Creates an empty volume of `size` bytes; fails with ERR_VOLUME_EXISTS if the store has it. */
  async create(id: string, options: { size: number; unitSize?: number; origin?: string }): Promise<VolumeRecord> {
    const unit = options.unitSize ?? this.#init.unitSize ?? VOLUMES_DEFAULTS.unitSize;
    if (options.size <= 0 || options.size % unit !== 0) throw new StorageError('ERR_STORAGE_CONFIG', `volume size ${options.size} is not a positive multiple of ${unit}`);
    return this.#createFrom(id, { size: options.size, unit, origin: options.origin ?? null, head: [] });
  }

  /**
   * Makes sure this data dir holds volume `id`: takes its lease (ERR_LEASE_HELD if another owner
   * holds it, unless `force`), brings local metadata up to date from the store (restoring it
   * entirely on an empty data dir) and marks the takeover with an epoch record.
   */
  async open(id: string, options: { force?: boolean } = {}): Promise<VolumeRecord> {
    await this.#hold(id, options);
    return this.db.volume(id)!;
  }

  /**
   * Brings the local copy of a volume's metadata up to date from the store without taking its
   * lease (listing checkpoints or cloning a volume another peer holds). Held volumes are current.
   */
  async refresh(id: string): Promise<void> {
    checkId(id);
    if (!this.#held.has(id)) await this.#refresh(id);
  }

  /** The block device of an open volume (created on first use, one per volume). */
  async device(id: string, options: { force?: boolean } = {}): Promise<BlockDevice> {
    const held = await this.#hold(id, options);
    if (!held.device) {
      const record = this.db.volume(id)!;
      held.device = await BlockDevice.open({
        volume: id, size: record.size, unitSize: record.unit, head: this.db.map(id, HEAD), store: this.store, cache: this.cache,
        logger: this.#logger.child({ volume: id }), dirtyDir: join(this.#init.dataDir, 'dirty', id), metadata: held.metadata, db: this.db,
        adoptDirty: held.adoptDirty, options: this.#init.device ?? {},
      });
    }
    return held.device;
  }

  /** A read-only device showing checkpoint `version` of a volume (no lease needed). */
  async view(id: string, version: number): Promise<BlockDevice> {
    const record = this.db.volume(id);
    if (!record) throw new StorageError('ERR_VOLUME_NOT_FOUND', `volume ${id} not found`, { fields: { volume: id } });
    if (!this.db.versions(id).some((v) => v.version === version)) throw notFound(id, version);
    return BlockDevice.open({
      volume: `${id}@v${version}`, size: record.size, unitSize: record.unit, head: this.db.map(id, version), store: this.store, cache: this.cache,
      logger: this.#logger.child({ volume: id, version }), dirtyDir: join(this.#init.dataDir, 'dirty', `${id}@v${version}`),
    });
  }

  /** Stops a volume's device (flushing it unless `flush: false`); the lease stays held. */
  async closeDevice(id: string, options: { flush?: boolean } = {}): Promise<void> {
    const held = this.#held.get(id);
    if (!held?.device) return;
    await held.device.stop(options);
    held.device = undefined;
  }

  /** True while the volume has a device. */
  hasDevice(id: string): boolean {
    return !!this.#held.get(id)?.device;
  }

  /**
   * Checkpoint: flushes the device (if any) to the store, then copies the head map to checkpoint
   * `v<n>` in one committed record. The caller freezes the filesystem around it.
   */
  async checkpoint(id: string, comment = ''): Promise<Checkpoint> {
    const held = await this.#hold(id);
    await held.device?.flush();
    const version = held.metadata.record.nextVersion;
    await held.metadata.commit([{ op: 'checkpoint', version, comment, created: Date.now() }]);
    return this.#checkpoint(id, version);
  }

  /** Checkpoints of a volume, oldest first. */
  checkpoints(id: string): Checkpoint[] {
    if (!this.db.volume(id)) throw new StorageError('ERR_VOLUME_NOT_FOUND', `volume ${id} not found`, { fields: { volume: id } });
    return this.db.versions(id).map(toCheckpoint);
  }

  /**
   * What a volume holds in the store: its checkpoints, and the bytes of the objects its head and
   * checkpoints reference, less those of the checkpoint it was cloned from (a sprite does not pay
   * for its base image). Units not flushed yet are not in the store, so not counted.
   */
  async usage(id: string): Promise<VolumeUsage> {
    const record = this.db.volume(id);
    if (!record) throw new StorageError('ERR_VOLUME_NOT_FOUND', `volume ${id} not found`, { fields: { volume: id } });
    const objects = this.db.objects(id);
    const origin = /^clone of (\S+)@v(\d+)$/.exec(record.origin ?? '');
    if (origin) {
      const [, from, version] = origin;
      if (!this.db.volume(from!)) await this.#refresh(from!).catch(() => undefined);
      for (const object of this.db.map(from!, Number(version)).values()) objects.delete(object);
    }
    return { checkpoints: this.db.versions(id).length, bytes: objects.size * record.unit };
  }

  /** Points the head at checkpoint `version`; the volume must have no device (unmounted). */
  async restore(id: string, version: number): Promise<void> {
    const held = await this.#hold(id);
    if (held.device) throw new StorageError('ERR_VOLUME_MOUNTED', `volume ${id} must be unmounted to restore`, { fields: { volume: id } });
    if (!this.db.versions(id).some((v) => v.version === version)) throw notFound(id, version);
    await held.metadata.commit([{ op: 'restore', version }]);
  }

  /** Deletes checkpoint `version` (its objects go at the next GC after the grace period). */
  async deleteCheckpoint(id: string, version: number): Promise<void> {
    const held = await this.#hold(id);
    if (!this.db.versions(id).some((v) => v.version === version)) throw notFound(id, version);
    await held.metadata.commit([{ op: 'drop', version }]);
  }

  /**
   * Creates volume `newId` whose head is checkpoint `version` of `fromId` (the newest checkpoint
   * when omitted): metadata only, the objects are shared. The source needs no lease; when this
   * data dir does not hold it, its metadata is read from the store.
   */
  async clone(newId: string, fromId: string, version?: number): Promise<VolumeRecord> {
    if (!this.#held.has(fromId)) await this.#refresh(fromId);
    const versions = this.db.versions(fromId);
    const chosen = version ?? versions.at(-1)?.version;
    if (chosen === undefined || !versions.some((v) => v.version === chosen)) throw notFound(fromId, chosen ?? -1);
    const source = this.db.volume(fromId)!;
    const head = [...this.db.map(fromId, chosen)].sort((a, b) => a[0] - b[0]);
    return this.#createFrom(newId, { size: source.size, unit: source.unit, origin: `clone of ${fromId}@v${chosen}`, head });
  }

  /** Deletes a volume's metadata here and in the store; its device must be closed. Missing is fine. */
  async remove(id: string): Promise<void> {
    const held = this.#held.get(id);
    if (held?.device) throw new StorageError('ERR_VOLUME_MOUNTED', `volume ${id} must be unmounted to remove`, { fields: { volume: id } });
    if (!held) {
      try {
        await this.#hold(id);
      } catch (error) {
        if (!hasCode(error, 'ERR_VOLUME_NOT_FOUND')) throw error;
      }
    }
    await this.#held.get(id)?.metadata.idle();
    await deleteVolumeMeta(this.store, id);
    this.db.deleteVolume(id);
    this.#held.delete(id);
    await rm(join(this.#init.dataDir, 'dirty', id), { recursive: true, force: true });
  }

  /**
   * Drops this data dir's copy of a volume (metadata, dirty units) without writing data to the
   * store: after a handoff (the lease, still ours, is given up) or a takeover by another owner (the
   * lease is theirs and stays untouched). Its device must be closed.
   */
  async forget(id: string): Promise<void> {
    const held = this.#held.get(id);
    if (held?.device) throw new StorageError('ERR_VOLUME_MOUNTED', `volume ${id} must be unmounted to forget`, { fields: { volume: id } });
    await held?.lease.release().catch(() => undefined);
    this.#held.delete(id);
    this.db.deleteVolume(id);
    await rm(join(this.#init.dataDir, 'dirty', id), { recursive: true, force: true });
  }

  /** Stops holding a volume: flushes and closes its device and gives the lease up. */
  async release(id: string): Promise<void> {
    const held = this.#held.get(id);
    if (!held) return;
    await this.closeDevice(id);
    await held.metadata.idle();
    await held.lease.release();
    this.#held.delete(id);
  }

  /** Ids of the volumes this engine holds. */
  held(): string[] {
    return [...this.#held.keys()];
  }

  /** Releases every volume (flushing devices unless `flush: false`), then closes the database and cache. */
  async close(options: { flush?: boolean } = {}): Promise<void> {
    clearInterval(this.#renewTimer);
    for (const id of [...this.#held.keys()]) {
      const held = this.#held.get(id)!;
      await held.device?.stop(options).catch((error) => this.#logger.error('device stop failed', { volume: id, error: describe(error) }));
      await held.metadata.idle();
      if (options.flush !== false) await held.lease.release().catch(() => undefined);
      this.#held.delete(id);
    }
    await this.cache.stop();
    this.db.close();
  }

  async #createFrom(id: string, spec: { size: number; unit: number; origin: string | null; head: Array<[number, string]> }): Promise<VolumeRecord> {
    checkId(id);
    if (this.db.volume(id) || (await this.#inStore(id))) throw new StorageError('ERR_VOLUME_EXISTS', `volume ${id} already exists`, { fields: { volume: id } });
    const lease = this.#lease(id);
    const epoch = await lease.acquire();
    const state: VolumeState = {
      format: 1,
      volume: { id, size: spec.size, unit: spec.unit, created: Date.now(), origin: spec.origin, nextVersion: 0 },
      seq: 0, epoch, time: Date.now(), head: spec.head, versions: [],
    };
    await writeSnapshot(this.store, state);
    this.db.loadState(state, 0);
    this.#held.set(id, { lease, metadata: this.#metadata(id, lease), adoptDirty: false });
    return this.db.volume(id)!;
  }

  #hold(id: string, options: { force?: boolean } = {}): Promise<Held> {
    const held = this.#held.get(id);
    if (held) return Promise.resolve(held);
    let opening = this.#opening.get(id);
    if (!opening) {
      opening = this.#take(id, options).finally(() => this.#opening.delete(id));
      this.#opening.set(id, opening);
    }
    return opening;
  }

  async #take(id: string, options: { force?: boolean }): Promise<Held> {
    checkId(id);
    let local = this.db.volume(id);
    // Existence first, so a missing volume does not get a lease object.
    if (!local) await this.#refresh(id);
    local = this.db.volume(id)!;
    const lease = this.#lease(id);
    await lease.acquire({ force: options.force ?? false, minEpoch: local.epoch });
    const before = this.db.volume(id)!;
    const changed = await this.#refresh(id);
    const metadata = this.#metadata(id, lease);
    // The epoch record ends any stale writer's chain at this point (see journal.ts).
    await metadata.commit([{ op: 'epoch' }]);
    // Dirty units of a previous run stay valid unless another writer committed since.
    const held: Held = { lease, metadata, adoptDirty: !changed || before.epoch === this.db.volume(id)!.epoch };
    this.#held.set(id, held);
    this.#logger.info('volume opened', { volume: id, epoch: lease.epoch, seq: this.db.volume(id)!.seq });
    return held;
  }

  /**
   * Brings the local copy of a volume's metadata up to the store's; true when anything changed.
   * A newer snapshot replaces the local copy; otherwise new records are applied in order.
   */
  async #refresh(id: string): Promise<boolean> {
    const local = this.db.volume(id);
    const stored = await loadVolume(this.store, id, local ? { seq: local.seq, epoch: local.epoch } : undefined);
    if (stored.snapshot) this.db.loadState(stored.snapshot, stored.snapshot.seq);
    for (const record of stored.records) this.db.apply(record);
    return !!stored.snapshot || stored.records.length > 0;
  }

  async #inStore(id: string): Promise<boolean> {
    for await (const info of this.store.list(volumePrefix(id))) {
      if (!info.key.endsWith('/lease')) return true;
    }
    return false;
  }

  #lease(id: string): Lease {
    return new Lease({
      store: this.store, volume: id, owner: this.owner,
      ttlMs: this.#init.leaseTtlMs ?? VOLUMES_DEFAULTS.leaseTtlMs,
      checkIntervalMs: this.#init.leaseCheckMs ?? VOLUMES_DEFAULTS.leaseCheckMs,
    });
  }

  #metadata(id: string, lease: Lease): VolumeMetadata {
    return new VolumeMetadata({
      volume: id, db: this.db, store: this.store, lease, logger: this.#logger.child({ volume: id }),
      snapshotEvery: this.#init.snapshotEvery ?? VOLUMES_DEFAULTS.snapshotEvery,
    });
  }

  #checkpoint(id: string, version: number): Checkpoint {
    const record = this.db.versions(id).find((v) => v.version === version);
    if (!record) throw notFound(id, version);
    return toCheckpoint(record);
  }
}

/** Parses a checkpoint id (`v3` or `3`) into its version number. */
export function parseCheckpointId(id: string): number {
  const match = /^v?(\d+)$/.exec(id);
  if (!match) throw new StorageError('ERR_CHECKPOINT_NOT_FOUND', `bad checkpoint id ${JSON.stringify(id)}`);
  return Number(match[1]);
}

function toCheckpoint(record: VersionRecord): Checkpoint {
  return { id: `v${record.version}`, version: record.version, comment: record.comment, created: record.created, units: record.units };
}

function notFound(id: string, version: number): StorageError {
  return new StorageError('ERR_CHECKPOINT_NOT_FOUND', `volume ${id} has no checkpoint v${version}`, { fields: { volume: id, version } });
}

function checkId(id: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id)) throw new StorageError('ERR_STORAGE_CONFIG', `bad volume id ${JSON.stringify(id)}`);
}

async function ownerId(dataDir: string): Promise<string> {
  const path = join(dataDir, 'owner');
  const existing = (await readFile(path, 'utf8').catch(() => '')).trim();
  if (existing) return existing;
  const id = randomBytes(8).toString('hex');
  await writeFile(path, `${id}\n`);
  return id;
}
