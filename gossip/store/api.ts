import type { PartialLimits } from './partials.ts';
import type { KeyOf, RowInput, RowOf, TableDef } from './schema.ts';
import type { ApplyResult, ChangeEvent, Changeset, Heads, StoreHealth, VersionRanges } from './types.ts';
import { VALIDATION_DEFAULTS } from './validate.ts';
import type { ValidationLimits } from './validate.ts';

/** Every cap of a store. */
export interface StoreLimits extends ValidationLimits, PartialLimits {
  /** A remote timestamp further ahead of the wall clock does not advance the HLC. @default 60000 */
  maxClockDriftMs: number;
  /** Default `maxChanges` of `changesFor` (it never exceeds maxChangesPerChangeset). @default 256 */
  serveChunkChanges: number;
  /** Default `maxBytes` of `changesFor`: estimated bytes of the changes in one chunk. @default 1 MiB */
  serveChunkBytes: number;
  /** Sites and ranges per site that `needs` reads from a peer's state; the rest is ignored. @default 4096 */
  maxSyncEntries: number;
}

/** Default caps of a store. */
export const STORE_DEFAULTS: StoreLimits = Object.freeze({
  ...VALIDATION_DEFAULTS,
  maxPartialVersions: 256,
  maxPartialVersionsPerSite: 32,
  maxBufferedChanges: 65_536,
  maxClockDriftMs: 60_000,
  serveChunkChanges: 256,
  serveChunkBytes: 1024 * 1024,
  maxSyncEntries: 4096,
});

/** The logging a store does: listener failures. */
export interface StoreLogger {
  warn(message: string, fields?: Record<string, unknown>): void;
}

/** How a store is opened. */
export interface StoreInit {
  /** SQLite file, or ':memory:'. */
  path: string;
  /** Every replicated table; changes for other tables are rejected. */
  tables: readonly TableDef[];
  /** Site id (32 lowercase hex) for a new file; must match an existing file's. @default random */
  siteId?: string;
  /** Wall clock in ms for the HLC. @default Date.now */
  now?: () => number;
  limits?: Partial<StoreLimits>;
  logger?: StoreLogger;
}

/** Writes of one local transaction; valid only inside the `transact` callback. */
export interface StoreTx {
  /**
   * Creates or updates a row. Creating (also over a deleted row) writes every column, defaults for
   * those not given; updating writes the given columns whose value differs. Throws ERR_STORE_WRITE
   * on an unknown table or column, a missing key value or a value of the wrong type.
   */
  upsert<D extends TableDef>(table: D, row: RowInput<D>): void;
  /** Deletes a row; a missing or deleted row is no change. */
  delete<D extends TableDef>(table: D, pk: KeyOf<D>): void;
  /** Reads a row as this transaction sees it. */
  get<D extends TableDef>(table: D, pk: KeyOf<D>): RowOf<D> | undefined;
}

/** Listener of one table's committed changes. */
export type ChangeListener<D extends TableDef = TableDef> = (event: ChangeEvent<D>) => void;

/** Diagnostic dump of everything replicated, in a stable order, blobs as hex and ts as strings. */
export interface StoreDump {
  tables: Record<string, Record<string, unknown>[]>;
  rows: unknown[][];
  clock: unknown[][];
  versions: unknown[][];
  known: VersionRanges;
}

/** A replicated CRDT store with cr-sqlite's merge rules in one SQLite file. */
export interface CrdtStore {
  /** This store's site id: 32 lowercase hex characters. */
  readonly siteId: string;
  /**
   * Runs `fn` in one SQLite transaction and returns its changes as the next version of this site,
   * or undefined when nothing changed (no version is used). If `fn` throws, nothing is written and the
   * error propagates. Throws ERR_STORE_BUSY when it (or `apply`) is called from inside `fn`; listeners run after the
   * commit and may start transactions of their own. A changeset may exceed the wire caps: chunk it
   * (`chunkChangeset`) before sending.
   */
  transact(fn: (tx: StoreTx) => void): Changeset | undefined;
  /** A live row by key, or undefined (missing or deleted). */
  get<D extends TableDef>(table: D, pk: KeyOf<D>): RowOf<D> | undefined;
  /** Every live row of a table, ordered by key. */
  all<D extends TableDef>(table: D): RowOf<D>[];
  /**
   * Applies untrusted remote changesets, in list order and in one SQLite transaction, each complete
   * version atomically; chunks of incomplete versions are buffered (bounded) until complete. Invalid ones are rejected and
   * counted, never thrown and never partly applied. A version already known is a duplicate.
   */
  apply(changesets: readonly unknown[]): ApplyResult;
  /** Per site: the highest version up to which all are known. */
  heads(): Heads;
  /** Per site: missing version ranges below the highest known version (sites without gaps are absent). */
  gaps(): VersionRanges;
  /** Per site: all known version ranges (what a peer passes to `needs` besides heads). */
  known(): VersionRanges;
  /**
   * The version ranges a peer has that this store lacks, from its heads (1..head known) and
   * optionally its full known ranges. Malformed entries are ignored; at most `maxSyncEntries` sites
   * and ranges per site are read.
   */
  needs(theirHeads: Heads, theirKnown?: VersionRanges): VersionRanges;
  /**
   * What this store can serve of a site's versions in [from, to], lazily, as chunks of at most
   * `maxChanges` changes and about `maxBytes` bytes (at least one change each), and cleared ranges
   * for versions whose changes were all superseded. Unknown versions are skipped; an invalid site or
   * range yields nothing. The database is read afresh at each step, so writes in between are fine.
   */
  changesFor(siteId: string, from: number, to: number, options?: { maxChanges?: number; maxBytes?: number }): Generator<Changeset>;
  /** Calls `listener` after each commit that changed a row of the table; returns the unsubscribe. */
  subscribe<D extends TableDef>(table: D, listener: ChangeListener<D>): () => void;
  /** Counters for health reports. */
  health(): StoreHealth;
  /** Everything replicated, for comparing replicas and diagnostics. */
  dump(): StoreDump;
  /** Closes the file; later calls throw ERR_STORE_CLOSED. */
  close(): void;
}
