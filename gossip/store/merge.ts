import type Database from 'better-sqlite3';
import { versionKey } from './bookkeeping.ts';
import { SENTINEL } from './schema.ts';
import type { UserTable, StoredRow } from './tables.ts';
import type { Change } from './types.ts';
import { compareValues, decodeKey, encodeKey } from './values.ts';
import type { SqlValue } from './values.ts';

/** The winning write of one column (or the sentinel) of one row, as the clock table keeps it. */
export interface ClockEntry {
  cid: string;
  cl: number;
  col_version: number;
  val: SqlValue;
  site_id: string;
  db_version: number;
  seq: number;
}

/** A row a transaction touched, with its stored state before the transaction. */
export interface Touched {
  table: UserTable;
  pk: SqlValue[];
  before: StoredRow | undefined;
}

/** What one SQLite transaction changed: rows to report, versions whose changes may all be gone. */
export class MergeContext {
  readonly touched = new Map<string, Touched>();
  readonly superseded = new Set<string>();
}

/** Identity of the local transaction that writes: its version, timestamp and next seq. */
export interface LocalWrite {
  siteId: string;
  version: number;
  seq: number;
}

/**
 * The total order deciding which of two writes of the same column at the same causal length wins:
 * higher col_version, then larger value (`compareValues`), then larger site id; db_version and seq
 * only separate writes no honest site produces twice, so the order is total even on hostile input.
 */
export function compareWrites(a: Omit<ClockEntry, 'cid' | 'cl'>, b: Omit<ClockEntry, 'cid' | 'cl'>): number {
  return (
    Math.sign(a.col_version - b.col_version) ||
    compareValues(a.val, b.val) ||
    (a.site_id < b.site_id ? -1 : a.site_id > b.site_id ? 1 : 0) ||
    Math.sign(a.db_version - b.db_version) ||
    Math.sign(a.seq - b.seq)
  );
}

/**
 * cr-sqlite's merge on the clock tables (`crdt_rows`: causal length per row; `crdt_clock`: the
 * winning write per row and column) and the user tables that hold the resulting live rows.
 */
export class Merger {
  readonly #rowCl: Database.Statement;
  readonly #setRowCl: Database.Statement;
  readonly #clock: Database.Statement;
  readonly #rowVersions: Database.Statement;
  readonly #clearRow: Database.Statement;
  readonly #put: Database.Statement;
  readonly #page: Database.Statement;
  readonly #nextVersion: Database.Statement;

  constructor(db: Database.Database) {
    this.#rowCl = db.prepare('SELECT cl FROM crdt_rows WHERE tbl = ? AND pk = ?').pluck();
    this.#setRowCl = db.prepare('INSERT INTO crdt_rows (tbl, pk, cl) VALUES (?, ?, ?) ON CONFLICT (tbl, pk) DO UPDATE SET cl = excluded.cl');
    this.#clock = db.prepare('SELECT cid, cl, col_version, val, site_id, db_version, seq FROM crdt_clock WHERE tbl = ? AND pk = ? AND cid = ?');
    this.#rowVersions = db.prepare('SELECT DISTINCT site_id, db_version FROM crdt_clock WHERE tbl = ? AND pk = ?');
    this.#clearRow = db.prepare('DELETE FROM crdt_clock WHERE tbl = ? AND pk = ?');
    this.#put = db.prepare('INSERT OR REPLACE INTO crdt_clock (tbl, pk, cid, cl, col_version, val, site_id, db_version, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    this.#page = db.prepare('SELECT tbl, pk, cid, cl, col_version, val, seq FROM crdt_clock WHERE site_id = ? AND db_version = ? AND seq >= ? ORDER BY seq LIMIT ?');
    this.#nextVersion = db.prepare('SELECT db_version FROM crdt_clock WHERE site_id = ? AND db_version >= ? AND db_version <= ? ORDER BY db_version LIMIT 1').pluck();
  }

  /** Causal length of a row: 0 if never seen, odd alive, even deleted. */
  causalLength(table: string, key: string): number {
    return (this.#rowCl.get(table, key) as number | undefined) ?? 0;
  }

  /**
   * Merges one validated remote change. A change below the row's causal length is stale; one above
   * moves the row to its causal length (deleting it, or recreating it with defaults) and drops every
   * write made at a lower one, then wins; at equal causal length it wins if `compareWrites` says so.
   */
  applyRemote(context: MergeContext, table: UserTable, change: Change): void {
    const key = encodeKey(change.pk);
    const cl = this.causalLength(table.def.name, key);
    if (change.cl < cl) return;
    const entry: ClockEntry = { cid: change.cid, cl: change.cl, col_version: change.col_version, val: change.val, site_id: change.site_id, db_version: change.db_version, seq: change.seq };
    if (change.cl > cl) {
      this.#touch(context, table, key, change.pk);
      this.#advance(context, table, key, change.pk, change.cl);
      this.#write(context, table, key, change.pk, entry, undefined);
      return;
    }
    const current = this.clock(table.def.name, key, change.cid);
    if (current && compareWrites(entry, current) <= 0) return;
    this.#touch(context, table, key, change.pk);
    this.#write(context, table, key, change.pk, entry, current);
  }

  /**
   * A local upsert of stored values (every non-key column given or defaulted when the row is created
   * or resurrected; only the given ones otherwise). A value equal to the current one is no change.
   */
  upsert(context: MergeContext, write: LocalWrite, table: UserTable, pk: SqlValue[], values: ReadonlyMap<string, SqlValue>): void {
    const name = table.def.name;
    const key = encodeKey(pk);
    const cl = this.causalLength(name, key);
    if (cl % 2 === 0) {
      this.#touch(context, table, key, pk);
      this.#advance(context, table, key, pk, cl + 1);
      this.#write(context, table, key, pk, this.#local(write, SENTINEL, cl + 1, cl + 1, null), undefined);
      for (const column of table.def.info) {
        if (column.primaryKey) continue;
        const value = values.has(column.name) ? values.get(column.name)! : column.default;
        this.#write(context, table, key, pk, this.#local(write, column.name, cl + 1, 1, value), undefined);
      }
      return;
    }
    const stored = table.read(pk);
    for (const [cid, value] of values) {
      const current = this.clock(name, key, cid);
      if (compareValues(current ? current.val : (stored?.[cid] ?? null), value) === 0) continue;
      this.#touch(context, table, key, pk);
      this.#write(context, table, key, pk, this.#local(write, cid, cl, (current?.col_version ?? 0) + 1, value), current);
    }
  }

  /** A local delete; deleting a missing or deleted row is no change. */
  delete(context: MergeContext, write: LocalWrite, table: UserTable, pk: SqlValue[]): void {
    const key = encodeKey(pk);
    const cl = this.causalLength(table.def.name, key);
    if (cl % 2 === 0) return;
    this.#touch(context, table, key, pk);
    this.#advance(context, table, key, pk, cl + 1);
    this.#write(context, table, key, pk, this.#local(write, SENTINEL, cl + 1, cl + 1, null), undefined);
  }

  /** The winning write of a column (or the sentinel) of a row, or undefined. */
  clock(table: string, key: string, cid: string): ClockEntry | undefined {
    const row = this.#clock.get(table, key, cid) as ClockEntry | undefined;
    if (row && row.val instanceof Uint8Array) row.val = new Uint8Array(row.val);
    return row;
  }

  /** Surviving changes of a version from `fromSeq` on, in seq order, at most `limit`. */
  changesOf(siteId: string, version: number, ts: bigint, fromSeq: number, limit: number): Change[] {
    const rows = this.#page.all(siteId, version, fromSeq, limit) as { tbl: string; pk: string; cid: string; cl: number; col_version: number; val: SqlValue; seq: number }[];
    return rows.map((row) => ({
      table: row.tbl, pk: decodeKey(row.pk), cid: row.cid, val: row.val instanceof Uint8Array ? new Uint8Array(row.val) : row.val,
      col_version: row.col_version, db_version: version, seq: row.seq, site_id: siteId, cl: row.cl, ts,
    }));
  }

  /** The lowest version in [from, to] of the site that still has a surviving change. */
  nextVersionWithChanges(siteId: string, from: number, to: number): number | undefined {
    return this.#nextVersion.get(siteId, from, to) as number | undefined;
  }

  #local(write: LocalWrite, cid: string, cl: number, colVersion: number, val: SqlValue): ClockEntry {
    const seq = write.seq;
    write.seq += 1;
    return { cid, cl, col_version: colVersion, val, site_id: write.siteId, db_version: write.version, seq };
  }

  #touch(context: MergeContext, table: UserTable, key: string, pk: SqlValue[]): void {
    const id = `${table.def.name}\u0000${key}`;
    if (!context.touched.has(id)) context.touched.set(id, { table, pk, before: table.read(pk) });
  }

  /** Moves a row to a higher causal length: earlier writes stop counting. */
  #advance(context: MergeContext, table: UserTable, key: string, pk: SqlValue[], cl: number): void {
    const name = table.def.name;
    for (const { site_id, db_version } of this.#rowVersions.all(name, key) as { site_id: string; db_version: number }[]) {
      context.superseded.add(versionKey(site_id, db_version));
    }
    this.#clearRow.run(name, key);
    this.#setRowCl.run(name, key, cl);
    if (cl % 2 === 0) table.remove(pk);
    else table.reset(pk);
  }

  #write(context: MergeContext, table: UserTable, key: string, pk: SqlValue[], entry: ClockEntry, replaced: ClockEntry | undefined): void {
    if (replaced) context.superseded.add(versionKey(replaced.site_id, replaced.db_version));
    this.#put.run(table.def.name, key, entry.cid, entry.cl, entry.col_version, entry.val, entry.site_id, entry.db_version, entry.seq);
    if (entry.cid !== SENTINEL) table.set(pk, entry.cid, entry.val);
  }
}
