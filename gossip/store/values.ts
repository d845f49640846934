/** A value as stored and carried in changes: booleans are 0/1, integers are safe JS numbers. */
export type SqlValue = null | number | string | Uint8Array;

const RANK = { null: 0, number: 1, string: 2, blob: 3 } as const;

function rank(value: SqlValue): number {
  if (value === null) return RANK.null;
  if (typeof value === 'number') return RANK.number;
  if (typeof value === 'string') return RANK.string;
  return RANK.blob;
}

/**
 * The total order over values that breaks col_version ties: null < numbers < text < blobs.
 * Numbers (integer and real alike) compare numerically; text compares by its UTF-8 bytes (SQLite's
 * BINARY collation, which is code point order); blobs compare bytewise, a prefix before the longer blob.
 */
export function compareValues(a: SqlValue, b: SqlValue): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b);
  return 0;
}

/** Whether two values are equal under `compareValues`. */
export function valuesEqual(a: SqlValue, b: SqlValue): boolean {
  return compareValues(a, b) === 0;
}

/**
 * The canonical text form of a primary key (JSON of the values, blobs as `{"b": hex}`): equal keys
 * give equal strings, so it keys the clock tables.
 */
export function encodeKey(values: readonly SqlValue[]): string {
  return JSON.stringify(values.map((value) => (value instanceof Uint8Array ? { b: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') } : value)));
}

/** Inverse of `encodeKey`. */
export function decodeKey(key: string): SqlValue[] {
  return (JSON.parse(key) as (string | number | { b: string })[]).map((value) => (typeof value === 'object' ? new Uint8Array(Buffer.from(value.b, 'hex')) : value));
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
