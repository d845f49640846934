import type { RowOf } from '../../gossip/index.ts';
import { PeerError } from '../errors.ts';
import type { RecordStore } from './store.ts';
import { spritesTable } from './tables.ts';

/**
 * Lifecycle state of a sprite as recorded: `warm` is frozen with its memory kept, `cold` stopped by
 * the idle timer (both wake on use); `stopped` is a user's stop (only `start` or its URL starts it).
 */
export type SpriteState = 'running' | 'warm' | 'cold' | 'stopped' | 'failed';

/** The record of one sprite. */
export interface SpriteRecord {
  name: string;
  /** Internal id: names the sprite's directory, volume and cgroup. */
  id: string;
  state: SpriteState;
  /** Peer that runs the sprite. */
  owner: string;
  /** Raised by every change of owner: a peer that sees a higher epoch than its own has lost the sprite. */
  epoch: number;
  /** The object store that holds the sprite's disk (credentials removed); another peer restores it from there. */
  volume: string | null;
  /** The org the sprite belongs to: its creator's. */
  org: string;
  /** Names of its services, as mirrored into the record by the owner. */
  services: string[];
  httpPort: number;
  created: string;
  updated: string;
  /** Why the sprite failed, when it did. */
  reason?: string;
}

/** Where sprite records live: the mesh's replicated store (SpriteRecords), seen by every peer. */
export interface SpriteRegistry {
  /** The record, or undefined. */
  get(name: string): SpriteRecord | undefined;
  /** All records, by name. */
  list(): SpriteRecord[];
  /** Adds a record; throws ERR_NAME_TAKEN if the name exists. */
  insert(record: SpriteRecord): void;
  /** Changes state (and reason) of a sprite `owner` owns; does nothing when the name is missing or owned by another peer. */
  setState(name: string, owner: string, state: SpriteState, reason?: string): void;
  /**
   * Makes `owner` the sprite's owner with the next epoch, unless the record changed since `seen`
   * (another peer claimed it first): returns the new record, or undefined when the claim lost.
   */
  claim(seen: SpriteRecord, owner: string, state: SpriteState): SpriteRecord | undefined;
  /** The sprite's mirrored service definitions (JSON), or null. */
  services(name: string): string | null;
  /** Mirrors service definitions into the record of a sprite `owner` owns. */
  setServices(name: string, owner: string, services: string): void;
  /** Who may open the sprite's URL (`sprite` or `public`); `sprite` for a missing name. */
  urlAuth(name: string): string;
  /** Sets the URL auth of a sprite `owner` owns. */
  setUrlAuth(name: string, owner: string, auth: string): void;
  /** Calls `listener` with the name of every sprite whose record changed, and whether it went; returns the unsubscribe. */
  watch(listener: (name: string, gone: boolean) => void): () => void;
  /** Removes a record `owner` owns; a missing name, or one owned by another peer, is left alone. */
  remove(name: string, owner: string): void;
}

type SpriteRow = RowOf<typeof spritesTable>;

/**
 * Sprite records as rows of the mesh's replicated `sprites` table: every peer sees every sprite.
 * Only the owner writes a row (the guards below re-check ownership inside the transaction), so a
 * peer that lost a sprite to a failover never overwrites the new owner's record.
 */
export class SpriteRecords implements SpriteRegistry {
  readonly #mesh: RecordStore;

  constructor(mesh: RecordStore) {
    this.#mesh = mesh;
  }

  get(name: string): SpriteRecord | undefined {
    const row = this.#mesh.store.get(spritesTable, { name });
    return row && toRecord(row);
  }

  list(): SpriteRecord[] {
    return this.#mesh.store.all(spritesTable).map(toRecord);
  }

  insert(record: SpriteRecord): void {
    if (this.get(record.name)) throw new PeerError('ERR_NAME_TAKEN', `a sprite named ${record.name} exists`);
    this.#mesh.write((tx) => {
      if (tx.get(spritesTable, { name: record.name })) throw new PeerError('ERR_NAME_TAKEN', `a sprite named ${record.name} exists`);
      tx.upsert(spritesTable, {
        name: record.name, id: record.id, owner: record.owner, epoch: record.epoch, state: record.state, url_auth: 'sprite', org: record.org, volume: record.volume,
        http_port: record.httpPort, created: record.created, updated: record.updated, reason: record.reason ?? null,
      });
    });
  }

  setState(name: string, owner: string, state: SpriteState, reason?: string): void {
    this.#mesh.write((tx) => {
      if (tx.get(spritesTable, { name })?.owner !== owner) return;
      tx.upsert(spritesTable, { name, state, reason: reason ?? null, updated: new Date().toISOString() });
    });
  }

  claim(seen: SpriteRecord, owner: string, state: SpriteState): SpriteRecord | undefined {
    let claimed = false;
    this.#mesh.write((tx) => {
      const row = tx.get(spritesTable, { name: seen.name });
      if (!row || row.owner !== seen.owner || row.epoch !== seen.epoch || row.id !== seen.id) return;
      tx.upsert(spritesTable, { name: seen.name, owner, epoch: seen.epoch + 1, state, reason: null, updated: new Date().toISOString() });
      claimed = true;
    });
    return claimed ? this.get(seen.name) : undefined;
  }

  services(name: string): string | null {
    return this.#mesh.store.get(spritesTable, { name })?.services ?? null;
  }

  setServices(name: string, owner: string, services: string): void {
    this.#mesh.write((tx) => {
      if (tx.get(spritesTable, { name })?.owner === owner) tx.upsert(spritesTable, { name, services });
    });
  }

  urlAuth(name: string): string {
    return this.#mesh.store.get(spritesTable, { name })?.url_auth ?? 'sprite';
  }

  setUrlAuth(name: string, owner: string, auth: string): void {
    this.#mesh.write((tx) => {
      if (tx.get(spritesTable, { name })?.owner === owner) tx.upsert(spritesTable, { name, url_auth: auth, updated: new Date().toISOString() });
    });
  }

  watch(listener: (name: string, gone: boolean) => void): () => void {
    return this.#mesh.store.subscribe(spritesTable, (event) => listener(event.pk.name, !event.row));
  }

  remove(name: string, owner: string): void {
    this.#mesh.write((tx) => {
      if (tx.get(spritesTable, { name })?.owner === owner) tx.delete(spritesTable, { name });
    });
  }
}

/** Names in mirrored service definitions (a JSON array of specs); anything else shows none. */
function serviceNames(text: string | null): string[] {
  try {
    const specs: unknown = JSON.parse(text ?? '[]');
    return Array.isArray(specs) ? specs.map((spec) => (spec as { name?: unknown })?.name).filter((name): name is string => typeof name === 'string') : [];
  } catch {
    return [];
  }
}

function toRecord(row: SpriteRow): SpriteRecord {
  const record: SpriteRecord = {
    name: row.name, id: row.id, state: row.state as SpriteState, owner: row.owner, org: row.org, epoch: row.epoch, volume: row.volume,
    httpPort: row.http_port, created: row.created, updated: row.updated, services: serviceNames(row.services),
  };
  if (row.reason) record.reason = row.reason;
  return record;
}
