import Database from 'better-sqlite3';
import { StorageError } from '../errors.ts';

/** The version number under which the writable head map is stored. */
export const HEAD = -1;

/** One volume as the local metadata database knows it. */
export interface VolumeRecord {
  id: string;
  /** Device size in bytes. */
  size: number;
  /** Unit size in bytes. */
  unit: number;
  /** Creation time, ms since the epoch. */
  created: number;
  /** Lease epoch of the last applied record. */
  epoch: number;
  /** Sequence number of the last applied log record (0: only the creation snapshot). */
  seq: number;
  /** Sequence number of the last snapshot written to the store. */
  snapSeq: number;
  /** Number the next checkpoint gets (checkpoint ids are v0, v1, ...). */
  nextVersion: number;
  /** Where the volume came from (`clone of X@v2`, `image FILE`), or null. */
  origin: string | null;
}

/** One checkpoint of a volume. */
export interface VersionRecord {
  version: number;
  comment: string;
  created: number;
  /** Units with data in this version. */
  units: number;
}

/** One change in a metadata log record. */
export type MetaOp =
  /** Head map changes: object id, or null for a unit that became all zeros. */
  | { op: 'map'; units: Array<[number, string | null]> }
  /** Copy the head map to a new checkpoint. */
  | { op: 'checkpoint'; version: number; comment: string; created: number }
  /** Point the head at a checkpoint's map. */
  | { op: 'restore'; version: number }
  /** Delete a checkpoint. */
  | { op: 'drop'; version: number }
  /** A new writer took the lease; carries no change. */
  | { op: 'epoch' };

/** One immutable metadata log record, as stored (cbor) in the object store. */
export interface LogRecord {
  volume: string;
  seq: number;
  epoch: number;
  time: number;
  ops: MetaOp[];
}

/** A complete metadata snapshot of one volume, as stored (cbor) in the object store. */
export interface VolumeState {
  format: 1;
  volume: { id: string; size: number; unit: number; created: number; origin: string | null; nextVersion: number };
  seq: number;
  epoch: number;
  time: number;
  head: Array<[number, string]>;
  versions: Array<{ version: number; comment: string; created: number; map: Array<[number, string]> }>;
}

interface VolumeRow {
  id: string;
  size: number;
  unit: number;
  created: number;
  epoch: number;
  seq: number;
  snap_seq: number;
  next_version: number;
  origin: string | null;
}

/**
 * The local SQLite metadata of every volume this data dir knows: volumes, checkpoints, block
 * maps (version, unit -> object) and, in relaxed mode, the units acknowledged but not uploaded.
 * It is a replica of the store's log: a change is applied here only after its log record is
 * durable in the object store.
 */
export class MetaDb {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();

  constructor(path: string) {
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode survives a process crash; after a power loss the store (written first) is the truth.
    this.#db.pragma('synchronous = NORMAL');
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS volumes (
        id TEXT PRIMARY KEY, size INTEGER NOT NULL, unit INTEGER NOT NULL, created INTEGER NOT NULL,
        epoch INTEGER NOT NULL, seq INTEGER NOT NULL, snap_seq INTEGER NOT NULL, next_version INTEGER NOT NULL, origin TEXT
      );
      CREATE TABLE IF NOT EXISTS versions (
        volume TEXT NOT NULL, version INTEGER NOT NULL, comment TEXT NOT NULL, created INTEGER NOT NULL,
        PRIMARY KEY (volume, version)
      );
      CREATE TABLE IF NOT EXISTS map (
        volume TEXT NOT NULL, version INTEGER NOT NULL, unit INTEGER NOT NULL, object TEXT NOT NULL,
        PRIMARY KEY (volume, version, unit)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS dirty (volume TEXT NOT NULL, unit INTEGER NOT NULL, PRIMARY KEY (volume, unit)) WITHOUT ROWID;
    `);
  }

  /** A prepared statement, compiled once. */
  #sql(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) this.#statements.set(sql, (statement = this.#db.prepare(sql)));
    return statement;
  }

  /** The volume `id`, or undefined. */
  volume(id: string): VolumeRecord | undefined {
    const row = this.#sql('SELECT * FROM volumes WHERE id = ?').get(id) as VolumeRow | undefined;
    return row && toRecord(row);
  }

  /** Every volume known locally. */
  volumes(): VolumeRecord[] {
    return (this.#sql('SELECT * FROM volumes ORDER BY id').all() as VolumeRow[]).map(toRecord);
  }

  /** The map of `version` (HEAD for the head) as unit -> object id. */
  map(id: string, version: number): Map<number, string> {
    const rows = this.#sql('SELECT unit, object FROM map WHERE volume = ? AND version = ?').raw().all(id, version) as Array<[number, string]>;
    return new Map(rows);
  }

  /** The checkpoints of a volume, oldest first. */
  versions(id: string): VersionRecord[] {
    return this.#sql(`
      SELECT v.version, v.comment, v.created, (SELECT count(*) FROM map m WHERE m.volume = v.volume AND m.version = v.version) AS units
      FROM versions v WHERE v.volume = ? ORDER BY v.version`).all(id) as VersionRecord[];
  }

  /** Every object id any version of volume `id` references. */
  objects(id: string): Set<string> {
    return new Set((this.#sql('SELECT DISTINCT object FROM map WHERE volume = ?').pluck().all(id)) as string[]);
  }

  /** Replaces everything known about a volume with a snapshot (restore from the store, clone). */
  loadState(state: VolumeState, snapSeq: number): void {
    this.#db.transaction(() => {
      this.#deleteRows(state.volume.id);
      const v = state.volume;
      this.#sql('INSERT INTO volumes (id, size, unit, created, epoch, seq, snap_seq, next_version, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(v.id, v.size, v.unit, v.created, state.epoch, state.seq, snapSeq, v.nextVersion, v.origin);
      const insert = this.#sql('INSERT INTO map (volume, version, unit, object) VALUES (?, ?, ?, ?)');
      for (const [unit, object] of state.head) insert.run(v.id, HEAD, unit, object);
      for (const version of state.versions) {
        this.#sql('INSERT INTO versions (volume, version, comment, created) VALUES (?, ?, ?, ?)').run(v.id, version.version, version.comment, version.created);
        for (const [unit, object] of version.map) insert.run(v.id, version.version, unit, object);
      }
    })();
  }

  /** The full state of a volume, for a snapshot. */
  exportState(id: string): VolumeState {
    const v = this.#require(id);
    const rows = this.#sql('SELECT version, unit, object FROM map WHERE volume = ? ORDER BY version, unit').raw().all(id) as Array<[number, number, string]>;
    const maps = new Map<number, Array<[number, string]>>();
    for (const [version, unit, object] of rows) {
      let list = maps.get(version);
      if (!list) maps.set(version, (list = []));
      list.push([unit, object]);
    }
    return {
      format: 1,
      volume: { id, size: v.size, unit: v.unit, created: v.created, origin: v.origin, nextVersion: v.nextVersion },
      seq: v.seq,
      epoch: v.epoch,
      time: Date.now(),
      head: maps.get(HEAD) ?? [],
      versions: this.versions(id).map((version) => ({ version: version.version, comment: version.comment, created: version.created, map: maps.get(version.version) ?? [] })),
    };
  }

  /**
   * Applies one log record in one transaction. Records must arrive in sequence; a record at or
   * below the applied sequence is ignored (replay is idempotent).
   */
  apply(record: LogRecord): void {
    this.#db.transaction(() => {
      const v = this.#require(record.volume);
      if (record.seq <= v.seq) return;
      if (record.seq !== v.seq + 1) {
        throw new StorageError('ERR_METADATA_CORRUPT', `volume ${record.volume}: record ${record.seq} after ${v.seq}`, { fields: { volume: record.volume } });
      }
      for (const op of record.ops) this.#applyOp(v, op);
      this.#sql('UPDATE volumes SET seq = ?, epoch = ? WHERE id = ?').run(record.seq, record.epoch, record.volume);
    })();
  }

  /** Throws what `apply(record)` would throw, changing nothing (a dry run before a record is published). */
  check(record: LogRecord): void {
    const rollback = new Error('dry run');
    try {
      this.#db.transaction(() => {
        const v = this.#require(record.volume);
        for (const op of record.ops) this.#applyOp(v, op);
        throw rollback;
      })();
    } catch (error) {
      if (error !== rollback) throw error;
    }
  }

  /** Sets the epoch this data dir writes with (after taking the lease). */
  setEpoch(id: string, epoch: number): void {
    this.#sql('UPDATE volumes SET epoch = ? WHERE id = ?').run(epoch, id);
  }

  /** Records that a snapshot at `seq` is in the store. */
  setSnapSeq(id: string, seq: number): void {
    this.#sql('UPDATE volumes SET snap_seq = max(snap_seq, ?) WHERE id = ?').run(seq, id);
  }

  /** Units of a volume acknowledged locally but not yet uploaded (relaxed mode). */
  dirtyUnits(id: string): number[] {
    return this.#sql('SELECT unit FROM dirty WHERE volume = ? ORDER BY unit').pluck().all(id) as number[];
  }

  /** Replaces the recorded dirty units of a volume. */
  setDirtyUnits(id: string, units: Iterable<number>): void {
    this.#db.transaction(() => {
      this.#sql('DELETE FROM dirty WHERE volume = ?').run(id);
      const insert = this.#sql('INSERT INTO dirty (volume, unit) VALUES (?, ?)');
      for (const unit of units) insert.run(id, unit);
    })();
  }

  /** Forgets that units were dirty (they were committed). */
  clearDirtyUnits(id: string, units: Iterable<number>): void {
    const remove = this.#sql('DELETE FROM dirty WHERE volume = ? AND unit = ?');
    this.#db.transaction(() => {
      for (const unit of units) remove.run(id, unit);
    })();
  }

  /** Deletes every row of a volume. */
  deleteVolume(id: string): void {
    this.#db.transaction(() => this.#deleteRows(id))();
  }

  /** Closes the database. */
  close(): void {
    this.#db.close();
  }

  #applyOp(v: VolumeRecord, op: MetaOp): void {
    const id = v.id;
    switch (op.op) {
      case 'map': {
        const set = this.#sql('INSERT OR REPLACE INTO map (volume, version, unit, object) VALUES (?, ?, ?, ?)');
        const clear = this.#sql('DELETE FROM map WHERE volume = ? AND version = ? AND unit = ?');
        for (const [unit, object] of op.units) {
          if (object) set.run(id, HEAD, unit, object);
          else clear.run(id, HEAD, unit);
        }
        return;
      }
      case 'checkpoint':
        this.#sql('INSERT INTO versions (volume, version, comment, created) VALUES (?, ?, ?, ?)').run(id, op.version, op.comment, op.created);
        this.#sql('INSERT INTO map (volume, version, unit, object) SELECT volume, ?, unit, object FROM map WHERE volume = ? AND version = ?').run(op.version, id, HEAD);
        this.#sql('UPDATE volumes SET next_version = max(next_version, ?) WHERE id = ?').run(op.version + 1, id);
        return;
      case 'restore':
        if (!this.#sql('SELECT 1 FROM versions WHERE volume = ? AND version = ?').get(id, op.version)) {
          throw new StorageError('ERR_CHECKPOINT_NOT_FOUND', `volume ${id} has no checkpoint v${op.version}`, { fields: { volume: id } });
        }
        this.#sql('DELETE FROM map WHERE volume = ? AND version = ?').run(id, HEAD);
        this.#sql('INSERT INTO map (volume, version, unit, object) SELECT volume, ?, unit, object FROM map WHERE volume = ? AND version = ?').run(HEAD, id, op.version);
        return;
      case 'drop':
        this.#sql('DELETE FROM versions WHERE volume = ? AND version = ?').run(id, op.version);
        this.#sql('DELETE FROM map WHERE volume = ? AND version = ?').run(id, op.version);
        return;
      case 'epoch':
        return;
    }
  }

  #deleteRows(id: string): void {
    for (const table of ['volumes', 'versions', 'map', 'dirty']) {
      this.#sql(`DELETE FROM ${table} WHERE ${table === 'volumes' ? 'id' : 'volume'} = ?`).run(id);
    }
  }

  #require(id: string): VolumeRecord {
    const v = this.volume(id);
    if (!v) throw new StorageError('ERR_VOLUME_NOT_FOUND', `volume ${id} not found`, { fields: { volume: id } });
    return v;
  }
}

function toRecord(row: VolumeRow): VolumeRecord {
  return {
    id: row.id, size: row.size, unit: row.unit, created: row.created, epoch: row.epoch, seq: row.seq,
    snapSeq: row.snap_seq, nextVersion: row.next_version, origin: row.origin,
  };
}
