import Database from 'better-sqlite3';
import { ApiError } from './errors.ts';

/** Lifecycle state of a sprite as recorded. */
export type SpriteState = 'running' | 'stopped' | 'failed';

/** The record of one sprite. */
export interface SpriteRecord {
  name: string;
  /** Internal id: names the sprite's directory, volume and cgroup. */
  id: string;
  state: SpriteState;
  /** Peer that runs the sprite. */
  owner: string;
  httpPort: number;
  created: string;
  updated: string;
  /** Why the sprite failed, when it did. */
  reason?: string;
}

/**
 * Where sprite records live. One peer keeps them in SQLite today; the gossip store replaces
 * this with mesh-wide replicated rows behind the same interface.
 */
export interface SpriteRegistry {
  /** The record, or undefined. */
  get(name: string): SpriteRecord | undefined;
  /** All records, by name. */
  list(): SpriteRecord[];
  /** Adds a record; throws ERR_NAME_TAKEN if the name exists. */
  insert(record: SpriteRecord): void;
  /** Changes state (and reason); does nothing for a missing name. */
  setState(name: string, state: SpriteState, reason?: string): void;
  /** Removes a record; removing a missing name is not an error. */
  remove(name: string): void;
  close(): void;
}

interface Row {
  name: string;
  id: string;
  state: SpriteState;
  owner: string;
  http_port: number;
  created: string;
  updated: string;
  reason: string | null;
}

/** Sprite records in a SQLite file of the peer's data dir. */
export class SqliteRegistry implements SpriteRegistry {
  readonly #db: Database.Database;

  constructor(path: string) {
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS sprites (
      name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, state TEXT NOT NULL, owner TEXT NOT NULL,
      http_port INTEGER NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL, reason TEXT
    ) STRICT`);
  }

  get(name: string): SpriteRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM sprites WHERE name = ?').get(name) as Row | undefined;
    return row && fromRow(row);
  }

  list(): SpriteRecord[] {
    return (this.#db.prepare('SELECT * FROM sprites ORDER BY name').all() as Row[]).map(fromRow);
  }

  insert(record: SpriteRecord): void {
    try {
      this.#db
        .prepare('INSERT INTO sprites (name, id, state, owner, http_port, created, updated, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(record.name, record.id, record.state, record.owner, record.httpPort, record.created, record.updated, record.reason ?? null);
    } catch (error) {
      if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new ApiError('ERR_NAME_TAKEN', `a sprite named ${record.name} exists`);
      throw error;
    }
  }

  setState(name: string, state: SpriteState, reason?: string): void {
    this.#db.prepare('UPDATE sprites SET state = ?, reason = ?, updated = ? WHERE name = ?').run(state, reason ?? null, new Date().toISOString(), name);
  }

  remove(name: string): void {
    this.#db.prepare('DELETE FROM sprites WHERE name = ?').run(name);
  }

  close(): void {
    this.#db.close();
  }
}

function fromRow(row: Row): SpriteRecord {
  const record: SpriteRecord = { name: row.name, id: row.id, state: row.state, owner: row.owner, httpPort: row.http_port, created: row.created, updated: row.updated };
  if (row.reason) record.reason = row.reason;
  return record;
}
