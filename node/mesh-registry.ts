import { spritesTable, type Mesh, type RowOf } from '../gossip/index.ts';
import { ApiError } from './errors.ts';
import type { SpriteRecord, SpriteRegistry, SpriteState } from './registry.ts';

type SpriteRow = RowOf<typeof spritesTable>;

/**
 * Sprite records as rows of the mesh's replicated `sprites` table: every peer sees every sprite.
 * Only the owner writes a row (the guards below re-check ownership inside the transaction), so a
 * peer that lost a sprite to a failover never overwrites the new owner's record.
 */
export class MeshRegistry implements SpriteRegistry {
  readonly #mesh: Mesh;

  constructor(mesh: Mesh) {
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
    if (this.get(record.name)) throw new ApiError('ERR_NAME_TAKEN', `a sprite named ${record.name} exists`);
    this.#mesh.write((tx) => {
      if (tx.get(spritesTable, { name: record.name })) throw new ApiError('ERR_NAME_TAKEN', `a sprite named ${record.name} exists`);
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

  watch(listener: (name: string) => void): () => void {
    return this.#mesh.store.subscribe(spritesTable, (event) => listener(event.pk.name));
  }

  remove(name: string, owner: string): void {
    this.#mesh.write((tx) => {
      if (tx.get(spritesTable, { name })?.owner === owner) tx.delete(spritesTable, { name });
    });
  }

  close(): void {
    // The mesh owns the store and closes it.
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
