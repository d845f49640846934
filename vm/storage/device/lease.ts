import { decode, encode } from 'cbor-x';
import { StorageError, hasCode } from '../errors.ts';
import type { ObjectStore } from '../store/store.ts';
import { volumePrefix } from './journal.ts';

/** The lease object of a volume. */
interface LeaseBody {
  epoch: number;
  owner: string;
  /** Expiry, ms since the epoch; 0 once released. */
  expires: number;
}

/** Options of a lease. */
export interface LeaseInit {
  store: ObjectStore;
  volume: string;
  /** Stable id of this data dir (it survives restarts, so a restarted owner takes its lease back). */
  owner: string;
  /** Lease duration. @default 30000 */
  ttlMs?: number;
  /** Re-read the lease before a commit when the last check is older than this. @default 1000 */
  checkIntervalMs?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

/** Documented defaults of {@link LeaseInit}. */
export const LEASE_DEFAULTS = { ttlMs: 30_000, checkIntervalMs: 1000 } as const;

/**
 * The single-writer lease of a volume: `volumes/<id>/lease` holds {epoch, owner, expires}. Taking
 * it bumps the epoch (a conditional write where the store honours them); the holder renews it and
 * re-reads it before commits, and stops writing once it sees a newer epoch or its own expiry
 * passes unrenewed. A forced takeover (the owner is known dead) does not wait for expiry; a stale
 * writer then loses at most the commits of one check interval, and those records lose to the
 * newer epoch on every restore (see journal.ts).
 */
export class Lease {
  readonly #init: LeaseInit;
  readonly #now: () => number;
  #epoch = 0;
  #expires = 0;
  #checked = 0;
  #lost: StorageError | undefined;

  constructor(init: LeaseInit) {
    this.#init = init;
    this.#now = init.now ?? Date.now;
  }

  /** The epoch this holder writes with (0 before `acquire`). */
  get epoch(): number {
    return this.#epoch;
  }

  /** The fencing error once the lease was lost, else undefined. */
  get lost(): StorageError | undefined {
    return this.#lost;
  }

  /**
   * Takes the lease with a new epoch. Fails with ERR_LEASE_HELD while another owner's lease is
   * unexpired, unless `force`; with ERR_PRECONDITION_FAILED when another taker won the race.
   */
  async acquire(options: { force?: boolean; minEpoch?: number } = {}): Promise<number> {
    const current = await this.#read();
    const now = this.#now();
    if (current && current.body.owner !== this.#init.owner && current.body.expires > now && !options.force) {
      throw new StorageError('ERR_LEASE_HELD', `volume ${this.#init.volume} is leased by ${current.body.owner}`, {
        fields: { volume: this.#init.volume, owner: current.body.owner, expires: current.body.expires },
      });
    }
    const epoch = Math.max(current?.body.epoch ?? 0, options.minEpoch ?? 0) + 1;
    const body: LeaseBody = { epoch, owner: this.#init.owner, expires: now + this.#ttl() };
    const condition = current ? { ifMatch: current.etag } : { ifNoneMatch: true };
    await this.#init.store.put(this.#key(), Buffer.from(encode(body)), condition);
    if (!this.#init.store.conditionalWrites) {
      // Without conditional writes, read back: the last writer wins and the loser must know.
      const check = await this.#read();
      if (check?.body.epoch !== epoch || check.body.owner !== this.#init.owner) {
        throw new StorageError('ERR_PRECONDITION_FAILED', `volume ${this.#init.volume}: lost the lease race`, { fields: { volume: this.#init.volume } });
      }
    }
    this.#epoch = epoch;
    this.#expires = body.expires;
    this.#checked = now;
    this.#lost = undefined;
    return epoch;
  }

  /**
   * Before a commit: throws ERR_LEASE_LOST if the lease is gone, renews it when half its time is
   * used, and re-reads it when the last check is older than the check interval.
   */
  async ensure(): Promise<void> {
    if (this.#lost) throw this.#lost;
    const now = this.#now();
    if (this.#expires - now < this.#ttl() / 2) return this.renew();
    if (now - this.#checked >= (this.#init.checkIntervalMs ?? LEASE_DEFAULTS.checkIntervalMs)) {
      const current = await this.#read();
      if (this.#verify(current?.body) === 'overwritten') return this.renew();
      this.#checked = now;
    }
  }

  /** Extends the lease; throws ERR_LEASE_LOST when another epoch took it. */
  async renew(): Promise<void> {
    if (this.#lost) throw this.#lost;
    const now = this.#now();
    const current = await this.#read();
    this.#verify(current?.body);
    const body: LeaseBody = { epoch: this.#epoch, owner: this.#init.owner, expires: now + this.#ttl() };
    try {
      await this.#init.store.put(this.#key(), Buffer.from(encode(body)), { ifMatch: current!.etag });
    } catch (error) {
      if (hasCode(error, 'ERR_PRECONDITION_FAILED')) this.#fence('the lease changed during renewal');
      throw error;
    }
    this.#expires = body.expires;
    this.#checked = now;
  }

  /** Gives the lease up so another owner can take it at once (best effort). */
  async release(): Promise<void> {
    if (this.#lost || this.#epoch === 0) return;
    const current = await this.#read().catch(() => undefined);
    if (current?.body.epoch !== this.#epoch || current.body.owner !== this.#init.owner) return;
    await this.#init.store.put(this.#key(), Buffer.from(encode({ ...current.body, expires: 0 })), { ifMatch: current.etag }).catch(() => undefined);
    this.#epoch = 0;
  }

  /**
   * Fences unless the lease object is ours. An older epoch than ours is not a takeover: a stale
   * holder's renewal landed on a store that ignores If-Match (it read its own lease just before
   * ours replaced it). Ours still stands, and the caller puts it back ('overwritten'); fencing
   * here would leave the volume to the stale holder, whose commits every restore ignores.
   */
  #verify(body: LeaseBody | undefined): 'ours' | 'overwritten' {
    const overwritten = body !== undefined && body.epoch < this.#epoch;
    if (!overwritten && (!body || body.epoch !== this.#epoch || body.owner !== this.#init.owner)) {
      this.#fence(body ? `epoch ${body.epoch} of ${body.owner} took over` : 'the lease object is gone');
    }
    if (this.#expires <= this.#now()) this.#fence('the lease expired unrenewed');
    return overwritten ? 'overwritten' : 'ours';
  }

  #fence(reason: string): never {
    this.#lost = new StorageError('ERR_LEASE_LOST', `volume ${this.#init.volume}: fenced, ${reason}`, { fields: { volume: this.#init.volume, epoch: this.#epoch } });
    throw this.#lost;
  }

  async #read(): Promise<{ body: LeaseBody; etag: string } | undefined> {
    try {
      const { body, etag } = await this.#init.store.get(this.#key());
      return { body: decode(body) as LeaseBody, etag };
    } catch (error) {
      if (hasCode(error, 'ERR_OBJECT_NOT_FOUND')) return undefined;
      throw error;
    }
  }

  #key(): string {
    return `${volumePrefix(this.#init.volume)}lease`;
  }

  #ttl(): number {
    return this.#init.ttlMs ?? LEASE_DEFAULTS.ttlMs;
  }
}
