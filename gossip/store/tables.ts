import type Database from 'better-sqlite3';
import { StoreError } from './errors.ts';
import { columnSql, fromSqlValue } from './schema.ts';
import type { ColumnInfo, TableDef } from './schema.ts';
import type { SqlValue } from './values.ts';

/** A row as stored: column name to stored value. */
export type StoredRow = Record<string, SqlValue>;

/** The SQLite table holding the live rows of one replicated table; reads and writes by primary key. */
export class UserTable {
  readonly def: TableDef;
  readonly #db: Database.Database;
  readonly #where: string;
  readonly #select: Database.Statement;
  readonly #selectAll: Database.Statement;
  readonly #reset: Database.Statement;
  readonly #remove: Database.Statement;
  readonly #setters = new Map<string, Database.Statement>();

  constructor(db: Database.Database, def: TableDef) {
    this.def = def;
    this.#db = db;
    ensureTable(db, def);
    const keys = def.primaryKey.map((name) => `"${name}"`);
    this.#where = keys.map((key) => `${key} = ?`).join(' AND ');
    const names = def.info.map((column) => `"${column.name}"`);
    this.#select = db.prepare(`SELECT * FROM "${def.name}" WHERE ${this.#where}`);
    this.#selectAll = db.prepare(`SELECT * FROM "${def.name}" ORDER BY ${keys.join(', ')}`);
    this.#reset = db.prepare(`INSERT OR REPLACE INTO "${def.name}" (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`);
    this.#remove = db.prepare(`DELETE FROM "${def.name}" WHERE ${this.#where}`);
  }

  /** The stored row with this key, or undefined. */
  read(pk: readonly SqlValue[]): StoredRow | undefined {
    return normalize(this.#select.get(...pk) as StoredRow | undefined);
  }

  /** Every stored row, by key. */
  readAll(): StoredRow[] {
    return (this.#selectAll.all() as StoredRow[]).map((row) => normalize(row)!);
  }

  /** Writes the row with every non-key column at its default (a create or resurrect). */
  reset(pk: readonly SqlValue[]): void {
    const values = this.def.info.map((column) => (column.primaryKey ? pk[this.def.primaryKey.indexOf(column.name)]! : column.default));
    this.#reset.run(...values);
  }

  /** Removes the row; a missing row is not an error. */
  remove(pk: readonly SqlValue[]): void {
    this.#remove.run(...pk);
  }

  /** Sets one column of an existing row. */
  set(pk: readonly SqlValue[], column: string, value: SqlValue): void {
    let setter = this.#setters.get(column);
    if (!setter) {
      setter = this.#db.prepare(`UPDATE "${this.def.name}" SET "${column}" = ? WHERE ${this.#where}`);
      this.#setters.set(column, setter);
    }
    setter.run(value, ...pk);
  }

  /** A stored row in the table's TypeScript types. */
  toRow(row: StoredRow): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const column of this.def.info) out[column.name] = fromSqlValue(column, row[column.name]);
    return out;
  }

  /** The key columns of a stored row as an object in TypeScript types. */
  toKey(pk: readonly SqlValue[]): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [i, name] of this.def.primaryKey.entries()) out[name] = fromSqlValue(this.def.info.find((column) => column.name === name)!, pk[i]);
    return out;
  }
}

function normalize(row: StoredRow | undefined): StoredRow | undefined {
  if (!row) return undefined;
  // better-sqlite3 hands out Buffers; the store deals in plain Uint8Arrays.
  for (const [name, value] of Object.entries(row)) if (value instanceof Uint8Array) row[name] = new Uint8Array(value);
  return row;
}

interface TableInfoRow {
  name: string;
  type: string;
  notnull: number;
  pk: number;
}

/**
 * Creates the table, or checks an existing one against the definition: declared columns missing
 * from the file are added (with their default); anything else that differs throws ERR_STORE_OPEN.
 */
function ensureTable(db: Database.Database, def: TableDef): void {
  const existing = db.prepare(`PRAGMA table_info("${def.name}")`).all() as TableInfoRow[];
  if (existing.length === 0) {
    db.exec(`CREATE TABLE "${def.name}" (${def.info.map(columnSql).join(', ')}, PRIMARY KEY (${def.primaryKey.map((key) => `"${key}"`).join(', ')})) STRICT`);
    return;
  }
  const fail = (message: string): never => {
    throw new StoreError('ERR_STORE_OPEN', `table ${def.name}: ${message}`);
  };
  for (const row of existing) if (!def.info.some((column) => column.name === row.name)) fail(`the file has column ${row.name}, which is not declared`);
  for (const column of def.info) {
    const row = existing.find((candidate) => candidate.name === column.name);
    if (!row) {
      if (column.primaryKey) fail(`key column ${column.name} is not in the file`);
      db.exec(`ALTER TABLE "${def.name}" ADD COLUMN ${columnSql(column)} DEFAULT ${literal(column)}`);
      continue;
    }
    const type = column.type === 'boolean' ? 'INTEGER' : column.type.toUpperCase();
    const keyIndex = def.primaryKey.indexOf(column.name) + 1;
    if (row.type !== type || row.notnull !== (column.nullable ? 0 : 1) || row.pk !== keyIndex) fail(`column ${column.name} differs from the file`);
  }
}

function literal(column: ColumnInfo): string {
  const value = column.default;
  if (value === null) return 'NULL';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return `'${value.replaceAll("'", "''")}'`;
  return `X'${Buffer.from(value).toString('hex')}'`;
}
