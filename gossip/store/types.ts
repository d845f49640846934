import type { RejectCode } from './errors.ts';
import type { KeyOf, RowOf, TableDef } from './schema.ts';
import type { SqlValue } from './values.ts';

/** One column write (or row create/delete) as cr-sqlite's `crsql_changes` carries it. */
export interface Change {
  table: string;
  /** Primary key values in the table's key order. */
  pk: SqlValue[];
  /** Column name, or '-1' (SENTINEL) for a row create/delete that sets the causal length. */
  cid: string;
  /** The value in stored form (booleans 0/1); always null for the sentinel. */
  val: SqlValue;
  /** Per-column version at the write's causal length; equals `cl` for the sentinel. */
  col_version: number;
  /** Version of the writing site's transaction. */
  db_version: number;
  /** Position of the change within its version. */
  seq: number;
  /** The writing site: 32 lowercase hex characters. */
  site_id: string;
  /** Causal length of the row: odd alive, even deleted. */
  cl: number;
  /** HLC timestamp of the writing transaction: (ms << 16) | counter. */
  ts: bigint;
}

/**
 * The changes of one version of one site, or a chunk of them, or a cleared range.
 * A chunk covers seqs `seqs[0]..seqs[1]` and carries the surviving changes in that span; a version is
 * complete once chunks cover 0..last_seq. With `cleared_to`, versions db_version..cleared_to of the
 * site are known to have no surviving change (then changes is empty, last_seq 0, seqs [0, 0]).
 */
export interface Changeset {
  site_id: string;
  db_version: number;
  last_seq: number;
  seqs: [number, number];
  ts: bigint;
  changes: Change[];
  cleared_to?: number;
}

/** Per site (hex id): the highest version up to which every version is known (0 for none). */
export type Heads = Record<string, number>;

/** Per site: inclusive version ranges, sorted and disjoint. */
export type VersionRanges = Record<string, [number, number][]>;

/** Why `apply` refused one changeset. */
export interface Rejection {
  /** Index of the changeset in the list given to `apply`. */
  index: number;
  code: RejectCode;
  message: string;
}

/** What one `apply` call did, counted in changesets of its input. */
export interface ApplyResult {
  /** Completed versions (and cleared ranges) newly applied. */
  applied: number;
  /** Changesets of versions already known. */
  duplicate: number;
  /** Chunks kept until their version is complete. */
  buffered: number;
  rejected: number;
  rejections: Rejection[];
  /** Rows of applied versions not merged because a value broke its column's content rule. */
  dropped: number;
}

/** A row of a table changed in a committed transaction; `row` is undefined when it was deleted. */
export interface ChangeEvent<D extends TableDef = TableDef> {
  table: string;
  pk: KeyOf<D>;
  row: RowOf<D> | undefined;
  origin: 'local' | 'remote';
}

/** Counters for health reports; all since the store was opened. */
export interface StoreHealth {
  siteId: string;
  /** Last version of this site's own transactions. */
  dbVersion: number;
  /** Remote versions (and cleared ranges) applied. */
  applied: number;
  duplicates: number;
  rejected: number;
  rejectedByCode: Partial<Record<RejectCode, number>>;
  /** Versions with some chunks buffered, and their changes. */
  partialVersions: number;
  bufferedChanges: number;
  /** Partial versions dropped over a cap (they become gaps). */
  droppedPartials: number;
  /** Rows from other peers not merged because a value broke its column's content rule, by table. */
  droppedRows: Record<string, number>;
}
