import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { STORE_DEFAULTS } from './api.ts';
import type { ChangeListener, CrdtStore, StoreDump, StoreInit, StoreLimits, StoreLogger, StoreTx } from './api.ts';
import { Bookkeeping, versionKey } from './bookkeeping.ts';
import { Refusals, screenContent } from './content.ts';
import { StoreError } from './errors.ts';
import type { RejectCode } from './errors.ts';
import { Hlc } from './hlc.ts';
import { MergeContext, Merger } from './merge.ts';
import type { LocalWrite } from './merge.ts';
import { PartialBuffer } from './partials.ts';
import { gapsOf, missingRanges } from './ranges.ts';
import { isProblem, toSqlValue } from './schema.ts';
import type { KeyOf, RowOf, TableDef } from './schema.ts';
import { serveVersions } from './serve.ts';
import type { ServeSource } from './serve.ts';
import { UserTable } from './tables.ts';
import type { ApplyResult, ChangeEvent, Changeset, Heads, StoreHealth, VersionRanges } from './types.ts';
import { isSiteId, schemaIndex, validateChangeset } from './validate.ts';
import type { SchemaIndex } from './validate.ts';
import { compareValues, toHex } from './values.ts';
import type { SqlValue } from './values.ts';

// The store's interfaces live in api.ts; re-exported here for modules that import them from this file.
export type { CrdtStore, StoreInit } from './api.ts';

const BOOKKEEPING_SQL = `
CREATE TABLE IF NOT EXISTS crdt_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS crdt_rows (tbl TEXT NOT NULL, pk TEXT NOT NULL, cl INTEGER NOT NULL, PRIMARY KEY (tbl, pk)) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS crdt_clock (
  tbl TEXT NOT NULL, pk TEXT NOT NULL, cid TEXT NOT NULL, cl INTEGER NOT NULL, col_version INTEGER NOT NULL, val ANY,
  site_id TEXT NOT NULL, db_version INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (tbl, pk, cid)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS crdt_clock_by_version ON crdt_clock (site_id, db_version, seq);
CREATE TABLE IF NOT EXISTS crdt_versions (site_id TEXT NOT NULL, db_version INTEGER NOT NULL, last_seq INTEGER NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (site_id, db_version)) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS crdt_known (site_id TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL, PRIMARY KEY (site_id, lo)) STRICT, WITHOUT ROWID;
`;

/** Opens (creating if needed) a store file; throws ERR_STORE_OPEN if it belongs to another site or schema. */
export function openStore(init: StoreInit): CrdtStore {
  return new SqliteCrdtStore(init);
}

class SqliteCrdtStore implements CrdtStore {
  readonly siteId: string;
  readonly #db: Database.Database;
  readonly #limits: StoreLimits;
  readonly #logger: StoreLogger | undefined;
  readonly #tables = new Map<string, UserTable>();
  readonly #schema: SchemaIndex;
  readonly #merger: Merger;
  readonly #books: Bookkeeping;
  readonly #partials: PartialBuffer;
  readonly #hlc: Hlc;
  readonly #listeners = new Map<string, Set<ChangeListener>>();
  readonly #setMeta: Database.Statement;
  #dbVersion: number;
  #busy = false;
  #closed = false;
  #applied = 0;
  #duplicates = 0;
  #rejected = 0;
  readonly #rejectedByCode: Partial<Record<RejectCode, number>> = {};
  readonly #refusals: Refusals;

  constructor(init: StoreInit) {
    this.#limits = { ...STORE_DEFAULTS, ...init.limits };
    this.#logger = init.logger;
    this.#refusals = new Refusals(init.logger);
    const names = new Set(init.tables.map((def) => def.name));
    if (names.size !== init.tables.length) throw new StoreError('ERR_STORE_SCHEMA', 'two tables share a name');
    if (init.siteId !== undefined && !isSiteId(init.siteId)) throw new StoreError('ERR_STORE_OPEN', 'siteId is not 32 lowercase hex characters');
    this.#db = new Database(init.path);
    try {
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = NORMAL');
      this.#db.exec(BOOKKEEPING_SQL);
      this.#setMeta = this.#db.prepare('INSERT INTO crdt_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
      const meta = new Map((this.#db.prepare('SELECT key, value FROM crdt_meta').all() as { key: string; value: string }[]).map((row) => [row.key, row.value]));
      const stored = meta.get('site_id');
      if (stored !== undefined && init.siteId !== undefined && stored !== init.siteId) throw new StoreError('ERR_STORE_OPEN', `the file belongs to site ${stored}`);
      this.siteId = stored ?? init.siteId ?? toHex(randomBytes(16));
      this.#db.transaction(() => {
        for (const def of init.tables) this.#tables.set(def.name, new UserTable(this.#db, def));
        if (stored === undefined) this.#setMeta.run('site_id', this.siteId);
      })();
      this.#dbVersion = Number(meta.get('db_version') ?? 0);
      this.#hlc = new Hlc(init.now ?? Date.now, BigInt(meta.get('hlc') ?? '0'), this.#limits.maxClockDriftMs);
      this.#schema = schemaIndex(init.tables);
      this.#merger = new Merger(this.#db);
      this.#books = new Bookkeeping(this.#db);
      this.#partials = new PartialBuffer(this.#limits);
    } catch (error) {
      this.#db.close();
      throw error;
    }
  }

  transact(fn: (tx: StoreTx) => void): Changeset | undefined {
    this.#enter();
    const write: LocalWrite = { siteId: this.siteId, version: this.#dbVersion + 1, seq: 0 };
    const ts = this.#hlc.next();
    const context = new MergeContext();
    let open = true;
    const guard = (): void => {
      if (!open) throw new StoreError('ERR_STORE_WRITE', 'the transaction is over');
    };
    const tx: StoreTx = {
      upsert: (def, row) => {
        guard();
        const table = this.#table(def);
        const { pk, values } = this.#rowInput(table, row as Record<string, unknown>);
        this.#merger.upsert(context, write, table, pk, values);
      },
      delete: (def, key) => {
        guard();
        const table = this.#table(def);
        this.#merger.delete(context, write, table, this.#key(table, key as Record<string, unknown>));
      },
      get: (def, key) => {
        guard();
        return this.get(def, key);
      },
    };
    let changeset: Changeset | undefined;
    try {
      this.#db.transaction(() => {
        fn(tx);
        if (write.seq === 0) return;
        const lastSeq = write.seq - 1;
        if (lastSeq > this.#limits.maxLastSeq) throw new StoreError('ERR_STORE_WRITE', `transaction of ${write.seq} changes, over ${this.#limits.maxLastSeq + 1}`);
        this.#books.recordVersion(this.siteId, write.version, lastSeq, ts);
        this.#books.forgetCleared(context.superseded);
        this.#books.addKnown(this.siteId, write.version);
        this.#setMeta.run('db_version', String(write.version));
        this.#setMeta.run('hlc', String(this.#hlc.last));
        const changes = this.#merger.changesOf(this.siteId, write.version, ts, 0, lastSeq + 1);
        changeset = { site_id: this.siteId, db_version: write.version, last_seq: lastSeq, seqs: [0, lastSeq], ts, changes };
      })();
    } finally {
      open = false;
      this.#busy = false;
    }
    if (!changeset) return undefined;
    this.#dbVersion = write.version;
    this.#emit(context, 'local');
    return changeset;
  }

  get<D extends TableDef>(def: D, pk: KeyOf<D>): RowOf<D> | undefined {
    this.#open();
    const table = this.#table(def);
    const row = table.read(this.#key(table, pk as Record<string, unknown>));
    return row && (table.toRow(row) as RowOf<D>);
  }

  all<D extends TableDef>(def: D): RowOf<D>[] {
    this.#open();
    const table = this.#table(def);
    return table.readAll().map((row) => table.toRow(row) as RowOf<D>);
  }

  apply(changesets: readonly unknown[]): ApplyResult {
    this.#enter();
    const result: ApplyResult = { applied: 0, duplicate: 0, buffered: 0, rejected: 0, rejections: [], dropped: 0 };
    const context = new MergeContext();
    const clockBefore = this.#hlc.last;
    const list: readonly unknown[] = Array.isArray(changesets) ? changesets : [changesets];
    try {
      this.#db.transaction(() => {
        for (const [index, input] of list.entries()) this.#applyOne(context, index, input, result);
        this.#books.forgetCleared(context.superseded);
        // Peers may hold versions of this very site that this file lacks (say, a restored copy).
        const ownTop = this.#books.knownOf(this.siteId).at(-1)?.[1] ?? 0;
        if (ownTop > this.#dbVersion) this.#setMeta.run('db_version', String(ownTop));
        if (this.#hlc.last !== clockBefore) this.#setMeta.run('hlc', String(this.#hlc.last));
      })();
    } finally {
      this.#busy = false;
    }
    this.#dbVersion = Math.max(this.#dbVersion, this.#books.knownOf(this.siteId).at(-1)?.[1] ?? 0);
    this.#applied += result.applied;
    this.#duplicates += result.duplicate;
    this.#rejected += result.rejected;
    for (const { code } of result.rejections) this.#rejectedByCode[code] = (this.#rejectedByCode[code] ?? 0) + 1;
    this.#emit(context, 'remote');
    return result;
  }

  heads(): Heads {
    this.#open();
    const heads: Heads = {};
    for (const [site, ranges] of this.#books.known()) heads[site] = ranges[0]?.[0] === 1 ? ranges[0][1] : 0;
    return heads;
  }

  gaps(): VersionRanges {
    this.#open();
    const gaps: VersionRanges = {};
    for (const [site, ranges] of this.#books.known()) {
      const missing = gapsOf(ranges);
      if (missing.length > 0) gaps[site] = missing;
    }
    return gaps;
  }

  known(): VersionRanges {
    this.#open();
    return Object.fromEntries(this.#books.known());
  }

  needs(theirHeads: Heads, theirKnown: VersionRanges = {}): VersionRanges {
    this.#open();
    return missingRanges(theirHeads, theirKnown, (site) => this.#books.knownOf(site), isSiteId, this.#limits.maxSyncEntries);
  }

  changesFor(siteId: string, from: number, to: number, options: { maxChanges?: number; maxBytes?: number } = {}): Generator<Changeset> {
    this.#open();
    const valid = isSiteId(siteId) && Number.isSafeInteger(from) && Number.isSafeInteger(to) && from >= 1 && from <= to;
    const limits = {
      maxChanges: Math.max(1, Math.min(Math.floor(options.maxChanges ?? this.#limits.serveChunkChanges), this.#limits.maxChangesPerChangeset)),
      maxBytes: Math.max(1, Math.floor(options.maxBytes ?? this.#limits.serveChunkBytes)),
    };
    const source: ServeSource = {
      knownOf: (site) => this.#books.knownOf(site),
      nextVersionWithChanges: (site, lo, hi) => this.#merger.nextVersionWithChanges(site, lo, hi),
      versionInfo: (site, version) => this.#books.versionInfo(site, version),
      changesOf: (site, version, ts, fromSeq, limit) => this.#merger.changesOf(site, version, ts, fromSeq, limit),
    };
    const checkOpen = (): void => this.#open();
    return (function* () {
      if (!valid) return;
      for (const changeset of serveVersions(source, siteId, from, to, limits)) {
        yield changeset;
        checkOpen();
      }
    })();
  }

  subscribe<D extends TableDef>(def: D, listener: ChangeListener<D>): () => void {
    this.#open();
    const table = this.#table(def);
    const set = this.#listeners.get(table.def.name) ?? new Set();
    this.#listeners.set(table.def.name, set);
    const entry = listener as unknown as ChangeListener;
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  health(): StoreHealth {
    return {
      siteId: this.siteId, dbVersion: this.#dbVersion, applied: this.#applied, duplicates: this.#duplicates, rejected: this.#rejected,
      rejectedByCode: { ...this.#rejectedByCode }, partialVersions: this.#partials.versions, bufferedChanges: this.#partials.changes,
      droppedPartials: this.#partials.dropped, droppedRows: this.#refusals.counts(),
    };
  }

  dump(): StoreDump {
    this.#open();
    const plain = (value: unknown): unknown => (value instanceof Uint8Array ? `x'${toHex(value)}'` : typeof value === 'bigint' ? String(value) : value);
    const rowsOf = (sql: string): unknown[][] => (this.#db.prepare(sql).raw().all() as unknown[][]).map((row) => row.map(plain));
    const tables: StoreDump['tables'] = {};
    for (const [name, table] of this.#tables) {
      tables[name] = table.readAll().map((row) => Object.fromEntries(Object.entries(row).map(([key, value]) => [key, plain(value)])));
    }
    return {
      tables,
      rows: rowsOf('SELECT tbl, pk, cl FROM crdt_rows ORDER BY tbl, pk'),
      clock: rowsOf('SELECT tbl, pk, cid, cl, col_version, val, site_id, db_version, seq FROM crdt_clock ORDER BY tbl, pk, cid'),
      versions: rowsOf('SELECT site_id, db_version, last_seq, CAST(ts AS TEXT) FROM crdt_versions ORDER BY site_id, db_version'),
      known: this.known(),
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#db.close();
  }

  #applyOne(context: MergeContext, index: number, input: unknown, result: ApplyResult): void {
    const verdict = validateChangeset(input, this.#schema, this.#limits);
    if (!verdict.ok) {
      result.rejected += 1;
      result.rejections.push({ index, code: verdict.code, message: verdict.message });
      return;
    }
    const cs = verdict.changeset;
    if (cs.cleared_to !== undefined) {
      this.#partials.drop(cs.site_id, cs.db_version, cs.cleared_to);
      if (this.#books.addKnown(cs.site_id, cs.db_version, cs.cleared_to)) result.applied += 1;
      else result.duplicate += 1;
      return;
    }
    if (this.#books.isKnown(cs.site_id, cs.db_version)) {
      result.duplicate += 1;
      return;
    }
    let complete = cs;
    if (cs.seqs[0] !== 0 || cs.seqs[1] !== cs.last_seq) {
      const outcome = this.#partials.add(cs);
      if (outcome.kind === 'conflict') {
        result.rejected += 1;
        result.rejections.push({ index, code: 'ERR_CHANGESET_CONFLICT', message: outcome.message });
        return;
      }
      if (outcome.kind === 'buffered') {
        result.buffered += 1;
        return;
      }
      complete = outcome.changeset;
    } else {
      this.#partials.drop(cs.site_id, cs.db_version, cs.db_version);
    }
    const { kept, problems } = screenContent(complete.changes, this.#schema);
    for (const problem of problems) this.#refusals.note(complete.site_id, problem);
    result.dropped += problems.length;
    this.#books.recordVersion(complete.site_id, complete.db_version, complete.last_seq, complete.ts);
    // The version record goes again if none of its changes wins here.
    context.superseded.add(versionKey(complete.site_id, complete.db_version));
    for (const change of kept) this.#merger.applyRemote(context, this.#tables.get(change.table)!, change);
    this.#books.addKnown(complete.site_id, complete.db_version);
    this.#hlc.observe(complete.ts);
    result.applied += 1;
  }

  #emit(context: MergeContext, origin: ChangeEvent['origin']): void {
    for (const { table, pk, before } of context.touched.values()) {
      const listeners = this.#listeners.get(table.def.name);
      if (!listeners || listeners.size === 0) continue;
      const after = table.read(pk);
      if (sameRow(before, after)) continue;
      const event: ChangeEvent = { table: table.def.name, pk: table.toKey(pk) as ChangeEvent['pk'], row: after && (table.toRow(after) as ChangeEvent['row']), origin };
      for (const listener of [...listeners]) {
        try {
          listener(event);
        } catch (error) {
          // A broken listener must not undo a commit nor starve the others.
          this.#logger?.warn('store listener failed', { table: event.table, error: (error as Error)?.message ?? String(error) });
        }
      }
    }
  }

  #table(def: TableDef): UserTable {
    const table = this.#tables.get(def?.name);
    if (!table) throw new StoreError('ERR_STORE_WRITE', `unknown table ${String(def?.name)}`);
    return table;
  }

  #key(table: UserTable, input: Record<string, unknown>): SqlValue[] {
    if (typeof input !== 'object' || input === null) throw new StoreError('ERR_STORE_WRITE', `${table.def.name}: key is not an object`);
    return table.def.primaryKey.map((name) => {
      const column = table.def.info.find((candidate) => candidate.name === name)!;
      const value = toSqlValue(column, input[name], this.#limits.maxValueBytes);
      if (isProblem(value)) throw new StoreError('ERR_STORE_WRITE', `${table.def.name}.${name} ${value.error}`);
      return value;
    });
  }

  #rowInput(table: UserTable, input: Record<string, unknown>): { pk: SqlValue[]; values: Map<string, SqlValue> } {
    const pk = this.#key(table, input);
    const values = new Map<string, SqlValue>();
    for (const [name, raw] of Object.entries(input)) {
      const column = table.def.info.find((candidate) => candidate.name === name);
      if (!column) throw new StoreError('ERR_STORE_WRITE', `${table.def.name}: unknown column ${name}`);
      if (column.primaryKey) continue;
      const value = toSqlValue(column, raw, this.#limits.maxValueBytes);
      if (isProblem(value)) throw new StoreError('ERR_STORE_WRITE', `${table.def.name}.${name} ${value.error}`);
      values.set(name, value);
    }
    return { pk, values };
  }

  #open(): void {
    if (this.#closed) throw new StoreError('ERR_STORE_CLOSED', 'the store is closed');
  }

  #enter(): void {
    this.#open();
    if (this.#busy) throw new StoreError('ERR_STORE_BUSY', 'a transaction of this store is running');
    this.#busy = true;
  }
}

function sameRow(a: Record<string, SqlValue> | undefined, b: Record<string, SqlValue> | undefined): boolean {
  if (!a || !b) return a === b;
  return Object.keys(a).every((key) => compareValues(a[key] ?? null, b[key] ?? null) === 0);
}
