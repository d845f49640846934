import { materialize, type MaterializedView, type RowOf } from '../../gossip/index.ts';
import { URL_AUTH_MODES } from '../../proxy/index.ts';
import { PeerError } from '../errors.ts';
import { readCpus, readEnvironment, readLabels, readRamMb } from '../sprite-settings.ts';
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
  /** Who may open its URL: `sprite` (tokens of its org, admin tokens) or `public`. */
  urlAuth: string;
  labels: string[];
  /** Variables every exec and service started through the API gets. */
  environment: Record<string, string>;
  /** Memory limit (MiB) and CPUs it was created with; undefined (older rows): the running peer's own. */
  ramMb?: number;
  cpus?: number;
  /** The runtime version of the sandbox it last started in (see vm/runtime-version.ts); null before its first start. */
  version: string | null;
  /** When it last became running, and warm; null if never. */
  lastRunningAt: string | null;
  lastWarmingAt: string | null;
}

/** What a create records: the fields every sprite has and, optionally, what its creator chose. */
export type NewSpriteRecord = Omit<SpriteRecord, 'services' | 'urlAuth' | 'labels' | 'environment' | 'version' | 'lastRunningAt' | 'lastWarmingAt'>
  & Partial<Pick<SpriteRecord, 'urlAuth' | 'labels' | 'environment'>>;

/** The settings PUT /v1/sprites/{name} changes; what is left out stays. */
export interface SpriteUpdate {
  urlAuth?: string;
  labels?: string[];
}

/** Where sprite records live: the mesh's replicated store (SpriteRecords), seen by every peer. */
export interface SpriteRegistry {
  /** The record, or undefined. */
  get(name: string): SpriteRecord | undefined;
  /** All records, by name (shared objects: a caller does not change them). */
  list(): SpriteRecord[];
  /** Adds a record; throws ERR_NAME_TAKEN if the name exists. */
  insert(record: NewSpriteRecord): void;
  /**
   * Changes state (and reason) of a sprite `owner` owns, noting when it became running or warm;
   * does nothing when the name is missing or owned by another peer.
   */
  setState(name: string, owner: string, state: SpriteState, reason?: string): void;
  /** Marks a sprite `owner` owns running in a sandbox just started with runtime `version`. */
  started(name: string, owner: string, version: string): void;
  /**
   * Makes `owner` the sprite's owner with the next epoch, unless the record changed since `seen`
   * (another peer claimed it first): returns the new record, or undefined when the claim lost.
   */
  claim(seen: SpriteRecord, owner: string, state: SpriteState): SpriteRecord | undefined;
  /** The sprite's mirrored service definitions (JSON), or null. */
  services(name: string): string | null;
  /** Mirrors service definitions into the record of a sprite `owner` owns. */
  setServices(name: string, owner: string, services: string): void;
  /** Changes the URL auth and labels of a sprite `owner` owns (those given). */
  update(name: string, owner: string, changes: SpriteUpdate): void;
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
  /**
   * Every row in memory, kept current by store events, and the listing built from it once per
   * change: listing a thousand sprites reads no row and converts none that did not change.
   */
  readonly #rows: MaterializedView<string, SpriteRow>;
  readonly #records = new WeakMap<SpriteRow, SpriteRecord>();
  #listed: SpriteRecord[] | undefined;

  constructor(mesh: RecordStore) {
    this.#mesh = mesh;
    // Subscribed when the records are made, before any reader of changes, so one reading the
    // listing from its own change listener sees the change.
    this.#rows = materialize(mesh.store, spritesTable, (row) => row.name);
    mesh.store.subscribe(spritesTable, () => {
      this.#listed = undefined;
    });
  }

  get(name: string): SpriteRecord | undefined {
    const row = this.#mesh.store.get(spritesTable, { name });
    return row && toRecord(row);
  }

  list(): SpriteRecord[] {
    this.#listed ??= [...this.#rows.map.values()].map((row) => this.#record(row)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return [...this.#listed];
  }

  /** A row's record, converted once per row version. */
  #record(row: SpriteRow): SpriteRecord {
    let record = this.#records.get(row);
    if (!record) {
      record = toRecord(row);
      this.#records.set(row, record);
    }
    return record;
  }

  insert(record: NewSpriteRecord): void {
    if (this.get(record.name)) throw new PeerError('ERR_NAME_TAKEN', `a sprite named ${record.name} exists`);
    this.#mesh.write((tx) => {
      if (tx.get(spritesTable, { name: record.name })) throw new PeerError('ERR_NAME_TAKEN', `a sprite named ${record.name} exists`);
      tx.upsert(spritesTable, {
        name: record.name, id: record.id, owner: record.owner, epoch: record.epoch, state: record.state, url_auth: record.urlAuth ?? 'sprite', org: record.org,
        volume: record.volume, http_port: record.httpPort, created: record.created, updated: record.updated, reason: record.reason ?? null,
        labels: JSON.stringify(record.labels ?? []), environment: JSON.stringify(record.environment ?? {}), ram_mb: record.ramMb ?? null, cpus: record.cpus ?? null,
        ...stamps(record.state, record.created),
      });
    });
  }

  setState(name: string, owner: string, state: SpriteState, reason?: string): void {
    this.#mesh.write((tx) => {
      if (tx.get(spritesTable, { name })?.owner !== owner) return;
      const now = new Date().toISOString();
      tx.upsert(spritesTable, { name, state, reason: reason ?? null, updated: now, ...stamps(state, now) });
    });
  }

  started(name: string, owner: string, version: string): void {
    this.#mesh.write((tx) => {
      if (tx.get(spritesTable, { name })?.owner !== owner) return;
      const now = new Date().toISOString();
      tx.upsert(spritesTable, { name, state: 'running', reason: null, version, updated: now, last_running_at: now });
    });
  }

  claim(seen: SpriteRecord, owner: string, state: SpriteState): SpriteRecord | undefined {
    let claimed = false;
    this.#mesh.write((tx) => {
      const row = tx.get(spritesTable, { name: seen.name });
      if (!row || row.owner !== seen.owner || row.epoch !== seen.epoch || row.id !== seen.id) return;
      const now = new Date().toISOString();
      tx.upsert(spritesTable, { name: seen.name, owner, epoch: seen.epoch + 1, state, reason: null, updated: now, ...stamps(state, now) });
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

  update(name: string, owner: string, changes: SpriteUpdate): void {
    this.#mesh.write((tx) => {
      if (tx.get(spritesTable, { name })?.owner !== owner) return;
      tx.upsert(spritesTable, {
        name, updated: new Date().toISOString(),
        ...(changes.urlAuth === undefined ? {} : { url_auth: changes.urlAuth }),
        ...(changes.labels === undefined ? {} : { labels: JSON.stringify(changes.labels) }),
      });
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

/** The time columns a change to `state` sets: when it became running, or warm. */
function stamps(state: SpriteState, now: string): { last_running_at?: string; last_warming_at?: string } {
  if (state === 'running') return { last_running_at: now };
  if (state === 'warm') return { last_warming_at: now };
  return {};
}

/** A recorded time when it reads as one, else null (rows come from any peer of the mesh). */
function readTime(text: string | null): string | null {
  return text !== null && text.length <= 40 && Number.isFinite(Date.parse(text)) ? text : null;
}

/** A runtime version when it is short printable text, else null. */
function readVersion(text: string | null): string | null {
  return text !== null && /^[\x21-\x7e]{1,64}$/.test(text) ? text : null;
}

function toRecord(row: SpriteRow): SpriteRecord {
  const record: SpriteRecord = {
    name: row.name, id: row.id, state: row.state as SpriteState, owner: row.owner, org: row.org, epoch: row.epoch, volume: row.volume,
    httpPort: row.http_port, created: row.created, updated: row.updated, services: serviceNames(row.services),
    // An unknown mode shows as `sprite`: the proxy refuses such a URL to anyone without a token too.
    urlAuth: (URL_AUTH_MODES as readonly string[]).includes(row.url_auth) ? row.url_auth : 'sprite',
    labels: readLabels(row.labels), environment: readEnvironment(row.environment),
    version: readVersion(row.version), lastRunningAt: readTime(row.last_running_at), lastWarmingAt: readTime(row.last_warming_at),
  };
  const ramMb = readRamMb(row.ram_mb);
  const cpus = readCpus(row.cpus);
  if (ramMb !== undefined) record.ramMb = ramMb;
  if (cpus !== undefined) record.cpus = cpus;
  if (row.reason) record.reason = row.reason;
  return record;
}
