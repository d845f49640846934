import type { RejectCode } from './errors.ts';
import { SENTINEL, checkSqlValue, isProblem } from './schema.ts';
import type { ColumnInfo, TableDef } from './schema.ts';
import type { Change, Changeset } from './types.ts';
import type { SqlValue } from './values.ts';

/** Caps applied to every remote changeset. */
export interface ValidationLimits {
  /** Changes in one changeset (a chunk). @default 4096 */
  maxChangesPerChangeset: number;
  /** UTF-8 bytes of a text value or bytes of a blob. @default 65536 */
  maxValueBytes: number;
  /** Highest last_seq, so a version has at most this many + 1 changes. @default 1_000_000 */
  maxLastSeq: number;
}

/** Default validation caps. */
export const VALIDATION_DEFAULTS: ValidationLimits = Object.freeze({ maxChangesPerChangeset: 4096, maxValueBytes: 65_536, maxLastSeq: 1_000_000 });

/** The verdict on one changeset: a normalized copy, or a reject code and reason. */
export type Validation = { ok: true; changeset: Changeset } | { ok: false; code: RejectCode; message: string };

const SITE = /^[0-9a-f]{32}$/;
const MAX_TS = (1n << 63n) - 1n;

/** Whether a value is a site id: 32 lowercase hex characters. */
export function isSiteId(value: unknown): value is string {
  return typeof value === 'string' && SITE.test(value);
}

/** Column lookup for validation: table name to its columns by name. */
export type SchemaIndex = ReadonlyMap<string, { def: TableDef; columns: ReadonlyMap<string, ColumnInfo> }>;

/** Indexes table definitions for `validateChangeset`. */
export function schemaIndex(tables: readonly TableDef[]): SchemaIndex {
  return new Map(tables.map((def) => [def.name, { def, columns: new Map(def.info.map((column) => [column.name, column])) }]));
}

class Invalid extends Error {
  readonly code: RejectCode;

  constructor(code: RejectCode, message: string) {
    super(message);
    this.code = code;
  }
}

function need(condition: boolean, code: RejectCode, message: string): asserts condition {
  if (!condition) throw new Invalid(code, message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Checks an untrusted changeset against the schema and caps, structurally and semantically, and
 * returns a normalized copy (unknown fields dropped, -0 as 0, blobs copied). Never throws.
 * Rules: site 32 lowercase hex; db_version >= 1; 0 <= seqs[0] <= seqs[1] <= last_seq <= cap;
 * ts a bigint in [0, 2^63); each change of the same site, version and ts, with a seq inside `seqs`
 * and no seq twice; known table, key arity and types, known non-key column or the sentinel; value of
 * the column's type; cl and col_version >= 1, a column write at an odd cl, the sentinel with val null
 * and col_version = cl. A cleared range has db_version <= cleared_to, no changes, last_seq 0, seqs [0, 0].
 */
export function validateChangeset(input: unknown, schema: SchemaIndex, limits: ValidationLimits = VALIDATION_DEFAULTS): Validation {
  try {
    return { ok: true, changeset: check(input, schema, limits) };
  } catch (error) {
    if (error instanceof Invalid) return { ok: false, code: error.code, message: error.message };
    return { ok: false, code: 'ERR_CHANGESET_SHAPE', message: `unreadable changeset: ${(error as Error)?.message ?? String(error)}` };
  }
}

function check(input: unknown, schema: SchemaIndex, limits: ValidationLimits): Changeset {
  need(isRecord(input), 'ERR_CHANGESET_SHAPE', 'changeset is not an object');
  const { site_id, db_version, last_seq, seqs, ts, changes, cleared_to } = input;
  need(isSiteId(site_id), 'ERR_CHANGESET_SITE', 'site_id is not 32 lowercase hex characters');
  need(isCount(db_version) && db_version >= 1, 'ERR_CHANGESET_VERSION', 'db_version is not a positive safe integer');
  need(isCount(last_seq), 'ERR_CHANGESET_SEQ', 'last_seq is not a non-negative safe integer');
  need(last_seq <= limits.maxLastSeq, 'ERR_CHANGESET_SEQ', `last_seq is over ${limits.maxLastSeq}`);
  need(Array.isArray(seqs) && seqs.length === 2, 'ERR_CHANGESET_SHAPE', 'seqs is not a pair');
  const [from, to] = seqs as unknown[];
  need(isCount(from) && isCount(to) && from <= to && to <= last_seq, 'ERR_CHANGESET_SEQ', 'seqs is not a range within 0..last_seq');
  need(typeof ts === 'bigint' && ts >= 0n && ts <= MAX_TS, 'ERR_CHANGESET_SHAPE', 'ts is not a bigint in [0, 2^63)');
  need(Array.isArray(changes), 'ERR_CHANGESET_SHAPE', 'changes is not an array');
  need(changes.length <= limits.maxChangesPerChangeset, 'ERR_CHANGESET_TOO_LARGE', `more than ${limits.maxChangesPerChangeset} changes`);
  const out: Changeset = { site_id, db_version, last_seq, seqs: [from, to], ts, changes: [] };
  if (cleared_to !== undefined) {
    need(isCount(cleared_to) && cleared_to >= db_version, 'ERR_CHANGESET_VERSION', 'cleared_to is not a safe integer >= db_version');
    need(changes.length === 0 && last_seq === 0, 'ERR_CHANGESET_SHAPE', 'a cleared range carries changes or a last_seq');
    out.cleared_to = cleared_to;
    return out;
  }
  const seen = new Set<number>();
  for (const change of changes as unknown[]) {
    const checked = checkChange(change, out, schema, limits);
    need(!seen.has(checked.seq), 'ERR_CHANGESET_SEQ', `seq ${checked.seq} appears twice`);
    seen.add(checked.seq);
    out.changes.push(checked);
  }
  return out;
}

function checkChange(input: unknown, cs: Changeset, schema: SchemaIndex, limits: ValidationLimits): Change {
  need(isRecord(input), 'ERR_CHANGESET_SHAPE', 'change is not an object');
  const { table, pk, cid, val, col_version, db_version, seq, site_id, cl, ts } = input;
  need(site_id === cs.site_id && db_version === cs.db_version && ts === cs.ts, 'ERR_CHANGESET_MISMATCH', 'change of another site, version or ts than its changeset');
  need(isCount(seq) && seq >= cs.seqs[0] && seq <= cs.seqs[1], 'ERR_CHANGESET_SEQ', 'change seq outside the changeset seqs');
  need(typeof table === 'string', 'ERR_CHANGESET_SHAPE', 'table is not a string');
  const entry = schema.get(table);
  need(entry !== undefined, 'ERR_CHANGESET_TABLE', `unknown table ${JSON.stringify(table.slice(0, 64))}`);
  need(Array.isArray(pk) && pk.length === entry.def.primaryKey.length, 'ERR_CHANGESET_PK', `${table}: primary key arity is not ${entry.def.primaryKey.length}`);
  const key: SqlValue[] = [];
  for (const [i, name] of entry.def.primaryKey.entries()) {
    const value = checkSqlValue(entry.columns.get(name)!, (pk as unknown[])[i], limits.maxValueBytes);
    need(!isProblem(value), 'ERR_CHANGESET_PK', `${table}: key column ${name} ${isProblem(value) ? value.error : ''}`);
    key.push(value);
  }
  need(typeof cid === 'string', 'ERR_CHANGESET_SHAPE', 'cid is not a string');
  need(isCount(cl) && cl >= 1 && isCount(col_version) && col_version >= 1, 'ERR_CHANGESET_CLOCK', 'cl or col_version is not a positive safe integer');
  if (cid === SENTINEL) {
    need(val === null && col_version === cl, 'ERR_CHANGESET_CLOCK', 'sentinel change with a value or col_version other than cl');
    return { table, pk: key, cid, val: null, col_version, db_version: cs.db_version, seq, site_id: cs.site_id, cl, ts: cs.ts };
  }
  const column = entry.columns.get(cid);
  need(column !== undefined && !column.primaryKey, 'ERR_CHANGESET_COLUMN', `${table}: unknown column ${JSON.stringify(cid.slice(0, 64))}`);
  need(cl % 2 === 1, 'ERR_CHANGESET_CLOCK', 'column write at an even (deleted) causal length');
  const value = checkSqlValue(column, val, limits.maxValueBytes);
  if (isProblem(value)) {
    need(!value.error.startsWith('is over'), 'ERR_CHANGESET_TOO_LARGE', `${table}.${cid} ${value.error}`);
    need(false, 'ERR_CHANGESET_VALUE', `${table}.${cid} ${value.error}`);
  }
  return { table, pk: key, cid, val: value, col_version, db_version: cs.db_version, seq, site_id: cs.site_id, cl, ts: cs.ts };
}
