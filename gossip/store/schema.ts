import { StoreError } from './errors.ts';
import type { SqlValue } from './values.ts';

/** The SQL type of a column; booleans are stored as 0/1 integers. */
export type ColumnType = 'text' | 'integer' | 'real' | 'blob' | 'boolean';

/**
 * A content rule of a column, run on every non-null value that arrives from another peer (in
 * stored form: booleans as 0/1): undefined when the value is acceptable, else why not. Types and
 * sizes are checked before; this is for what a value means (a name, an id, an address).
 */
export type ValueCheck = (value: SqlValue) => string | undefined;

/** A column with options: nullable (default false) and a default for rows that never wrote it. */
export interface ColumnOptions {
  type: ColumnType;
  nullable?: boolean;
  /** Value read when a live row has no write of this column; defaults to null (nullable) or the type's zero. */
  default?: string | number | boolean | Uint8Array | null;
  /** Content rule for values from other peers; a row with a value that fails it is not merged (see content.ts). */
  check?: ValueCheck;
}

/** A column declaration: a bare type (not null) or options. */
export type ColumnSpec = ColumnType | ColumnOptions;

type TypeOf<T extends ColumnType> = T extends 'text' ? string : T extends 'integer' | 'real' ? number : T extends 'blob' ? Uint8Array : boolean;

/** The TypeScript type a column reads and writes as. */
export type ValueOf<S extends ColumnSpec> = S extends ColumnType
  ? TypeOf<S>
  : S extends { type: infer T extends ColumnType; nullable: true }
    ? TypeOf<T> | null
    : S extends { type: infer T extends ColumnType }
      ? TypeOf<T>
      : never;

/** One column after normalization. */
export interface ColumnInfo {
  readonly name: string;
  readonly type: ColumnType;
  readonly nullable: boolean;
  /** The stored (SQL) form of the default. */
  readonly default: SqlValue;
  readonly primaryKey: boolean;
  /** Content rule of remote values, if any. */
  readonly check?: ValueCheck;
}

/** A replicated table: name, typed columns and primary key, as `defineTable` returns it. */
export interface TableDef<C extends Record<string, ColumnSpec> = Record<string, ColumnSpec>, K extends keyof C & string = keyof C & string> {
  readonly name: string;
  readonly primaryKey: readonly K[];
  readonly columns: Readonly<C>;
  /** Every column normalized, in declaration order. */
  readonly info: readonly ColumnInfo[];
}

/** A full row of a table. */
export type RowOf<D extends TableDef> = D extends TableDef<infer C, infer _K> ? { [N in keyof C]: ValueOf<C[N]> } : never;

/** The primary key of a row as an object of the key columns. */
export type KeyOf<D extends TableDef> = D extends TableDef<infer C, infer K> ? { [N in K]: ValueOf<C[N]> } : never;

/** What `upsert` takes: the key columns and any of the others. */
export type RowInput<D extends TableDef> = KeyOf<D> & Partial<RowOf<D>>;

/** Sentinel column id of row create/delete changes (as in cr-sqlite). */
export const SENTINEL = '-1';

const NAME = /^[a-z][a-z0-9_]{0,62}$/;
const TYPES: readonly ColumnType[] = ['text', 'integer', 'real', 'blob', 'boolean'];
const KEY_TYPES: readonly ColumnType[] = ['text', 'integer', 'blob'];
const MAX_KEY_COLUMNS = 8;

/**
 * Declares a replicated table. Names are lowercase `[a-z][a-z0-9_]*` (tables may not start with
 * `crdt_`); 1-8 primary key columns of type text, integer or blob, never nullable. Throws ERR_STORE_SCHEMA.
 */
export function defineTable<const C extends Record<string, ColumnSpec>, const K extends keyof C & string>(def: {
  name: string;
  primaryKey: readonly K[];
  columns: C;
}): TableDef<C, K> {
  const fail = (message: string): never => {
    throw new StoreError('ERR_STORE_SCHEMA', `table ${def.name}: ${message}`);
  };
  if (typeof def.name !== 'string' || !NAME.test(def.name) || def.name.startsWith('crdt_')) fail('bad table name');
  const keys = [...def.primaryKey];
  if (keys.length === 0 || keys.length > MAX_KEY_COLUMNS) fail(`primary key needs 1-${MAX_KEY_COLUMNS} columns`);
  if (new Set(keys).size !== keys.length) fail('primary key repeats a column');
  const info: ColumnInfo[] = [];
  for (const [name, spec] of Object.entries(def.columns)) {
    if (!NAME.test(name)) fail(`bad column name ${JSON.stringify(name)}`);
    const options: ColumnOptions = typeof spec === 'string' ? { type: spec } : spec;
    if (!TYPES.includes(options.type)) fail(`column ${name}: unknown type ${String(options.type)}`);
    const primaryKey = keys.includes(name as K);
    const nullable = options.nullable === true;
    if (primaryKey && (nullable || !KEY_TYPES.includes(options.type) || options.default !== undefined)) {
      fail(`key column ${name} must be text, integer or blob, not nullable, without default`);
    }
    const column: { -readonly [K in keyof ColumnInfo]: ColumnInfo[K] } = { name, type: options.type, nullable, primaryKey, default: null as SqlValue };
    if (options.check !== undefined) {
      if (typeof options.check !== 'function') fail(`column ${name}: check is not a function`);
      column.check = options.check;
    }
    if (!primaryKey) {
      const stored = options.default === undefined ? (nullable ? null : zeroOf(options.type)) : toSqlValue(column, options.default);
      if (isProblem(stored)) fail(`column ${name}: default ${stored.error}`);
      else column.default = stored;
    }
    info.push(Object.freeze(column));
  }
  for (const key of keys) if (!info.some((column) => column.name === key)) fail(`primary key column ${key} is not declared`);
  return Object.freeze({ name: def.name, primaryKey: Object.freeze(keys), columns: Object.freeze({ ...def.columns }), info: Object.freeze(info) });
}

/**
 * The same table with content rules attached to its columns (by column name): what a store given
 * the result screens remote rows with. Throws ERR_STORE_SCHEMA for a rule of an undeclared column.
 */
export function withRules<D extends TableDef>(def: D, rules: Readonly<Record<string, ValueCheck>>): D {
  for (const name of Object.keys(rules)) {
    if (!def.info.some((column) => column.name === name)) throw new StoreError('ERR_STORE_SCHEMA', `table ${def.name}: a rule for undeclared column ${name}`);
  }
  const info = def.info.map((column) => (rules[column.name] ? Object.freeze({ ...column, check: rules[column.name] }) : column));
  return Object.freeze({ ...def, info: Object.freeze(info) });
}

function zeroOf(type: ColumnType): SqlValue {
  if (type === 'text') return '';
  if (type === 'blob') return new Uint8Array(0);
  return 0;
}

/** Why a value does not fit a column. */
export interface ValueProblem {
  error: string;
}

/**
 * Converts a typed value to its stored form (booleans to 0/1, -0 to 0), or describes why it does not
 * fit: wrong type, null in a non-nullable column, non-finite real, unsafe integer, ill-formed text,
 * or over `maxBytes` (UTF-8 bytes of text, bytes of a blob).
 */
export function toSqlValue(column: Pick<ColumnInfo, 'type' | 'nullable'>, value: unknown, maxBytes = Infinity): SqlValue | ValueProblem {
  if (value === null || value === undefined) return column.nullable && value === null ? null : { error: 'is null or missing in a non-nullable column' };
  switch (column.type) {
    case 'boolean':
      return typeof value === 'boolean' ? (value ? 1 : 0) : { error: 'is not a boolean' };
    default:
      return checkSqlValue(column, value, maxBytes);
  }
}

/**
 * Checks a value in stored form against a column and returns it normalized (-0 to 0, blobs copied
 * to a plain Uint8Array), or describes the problem. Booleans must be 0 or 1 here.
 */
export function checkSqlValue(column: Pick<ColumnInfo, 'type' | 'nullable'>, value: unknown, maxBytes = Infinity): SqlValue | ValueProblem {
  if (value === null) return column.nullable ? null : { error: 'is null in a non-nullable column' };
  switch (column.type) {
    case 'text':
      if (typeof value !== 'string') return { error: 'is not a string' };
      if (!value.isWellFormed()) return { error: 'is not well-formed unicode' };
      if (value.length > maxBytes || Buffer.byteLength(value, 'utf8') > maxBytes) return { error: `is over ${maxBytes} bytes` };
      return value;
    case 'integer':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) return { error: 'is not a safe integer' };
      return value === 0 ? 0 : value;
    case 'real':
      if (typeof value !== 'number' || !Number.isFinite(value)) return { error: 'is not a finite number' };
      return value === 0 ? 0 : value;
    case 'boolean':
      return value === 0 || value === 1 ? value : { error: 'is not 0 or 1' };
    case 'blob':
      if (!(value instanceof Uint8Array)) return { error: 'is not a Uint8Array' };
      if (value.byteLength > maxBytes) return { error: `is over ${maxBytes} bytes` };
      return new Uint8Array(value);
  }
}

/** Whether a conversion result is a problem rather than a value. */
export function isProblem(value: SqlValue | ValueProblem): value is ValueProblem {
  return value !== null && typeof value === 'object' && !(value instanceof Uint8Array);
}

/** Converts a stored value back to the column's TypeScript type (0/1 to boolean, Buffer to Uint8Array). */
export function fromSqlValue(column: Pick<ColumnInfo, 'type'>, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (column.type === 'boolean') return value === 1;
  if (column.type === 'blob') return new Uint8Array(value as Uint8Array);
  return value;
}

/** The SQLite declaration of a column in its user table. */
export function columnSql(column: ColumnInfo): string {
  const type = column.type === 'boolean' ? 'INTEGER' : column.type.toUpperCase();
  const check = column.type === 'boolean' ? ` CHECK ("${column.name}" IN (0, 1))` : '';
  return `"${column.name}" ${type}${column.nullable ? '' : ' NOT NULL'}${check}`;
}
