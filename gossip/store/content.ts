import type { StoreLogger } from './api.ts';
import { SENTINEL } from './schema.ts';
import type { ColumnInfo } from './schema.ts';
import type { Change } from './types.ts';
import type { SchemaIndex } from './validate.ts';
import { encodeKey } from './values.ts';
import type { SqlValue } from './values.ts';

/** A row of a remote version that was not merged because a value broke its column's content rule. */
export interface ContentProblem {
  table: string;
  column: string;
  pk: SqlValue[];
  error: string;
}

/**
 * Screens the changes of one complete, structurally valid remote version against the columns'
 * content rules (`ColumnOptions.check`). A row with any failing value (key or column) loses every
 * change of this version, not just the bad one: half a row (a sprite without its id) is worse
 * than no row. The version itself still counts as received, so it is not asked for again, and what
 * was dropped never reaches the clock table, so it is never served to another peer. Never throws:
 * a rule that throws counts as a failure.
 */
export function screenContent(changes: readonly Change[], schema: SchemaIndex): { kept: Change[]; problems: ContentProblem[] } {
  const bad = new Map<string, ContentProblem>();
  for (const change of changes) {
    const entry = schema.get(change.table);
    if (!entry) continue;
    const id = `${change.table}\u0000${encodeKey(change.pk)}`;
    if (bad.has(id)) continue;
    const problem = keyProblem(change, entry.def.primaryKey, entry.columns) ?? valueProblem(change, entry.columns.get(change.cid));
    if (problem) bad.set(id, { table: change.table, pk: change.pk, ...problem });
  }
  if (bad.size === 0) return { kept: [...changes], problems: [] };
  const kept = changes.filter((change) => !bad.has(`${change.table}\u0000${encodeKey(change.pk)}`));
  return { kept, problems: [...bad.values()] };
}

/** Distinct (site, table, column) refusals logged; past it they are only counted. */
const MAX_LOGGED = 256;

/** Rows refused for their content: counted by table, logged the first time a site sends such a value for a column. */
export class Refusals {
  readonly #counts: Record<string, number> = {};
  readonly #logged = new Set<string>();
  readonly #logger: StoreLogger | undefined;

  constructor(logger: StoreLogger | undefined) {
    this.#logger = logger;
  }

  note(site: string, problem: ContentProblem): void {
    this.#counts[problem.table] = (this.#counts[problem.table] ?? 0) + 1;
    const key = `${site}/${problem.table}.${problem.column}`;
    if (this.#logged.has(key) || this.#logged.size >= MAX_LOGGED) return;
    this.#logged.add(key);
    this.#logger?.warn('refused a row from another peer', { site, table: problem.table, column: problem.column, error: problem.error.slice(0, 200) });
  }

  /** Refused rows by table. */
  counts(): Record<string, number> {
    return { ...this.#counts };
  }
}

function keyProblem(change: Change, keys: readonly string[], columns: ReadonlyMap<string, ColumnInfo>): { column: string; error: string } | undefined {
  for (const [i, name] of keys.entries()) {
    const error = run(columns.get(name), change.pk[i] ?? null);
    if (error) return { column: name, error };
  }
  return undefined;
}

function valueProblem(change: Change, column: ColumnInfo | undefined): { column: string; error: string } | undefined {
  if (change.cid === SENTINEL) return undefined;
  const error = run(column, change.val);
  return error ? { column: change.cid, error } : undefined;
}

function run(column: ColumnInfo | undefined, value: SqlValue): string | undefined {
  if (!column?.check || value === null) return undefined;
  try {
    return column.check(value);
  } catch (error) {
    return `its rule failed: ${(error as Error)?.message ?? String(error)}`;
  }
}
