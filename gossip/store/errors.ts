/**
 * Every error code of the gossip store, with when it happens. Thrown errors use the `ERR_STORE_*`
 * codes; a remote changeset that `apply` refuses is counted under one of the `ERR_CHANGESET_*` codes.
 */
export const STORE_ERROR_CODES = {
  ERR_STORE_SCHEMA: 'a table definition is invalid (names, types, primary key, defaults)',
  ERR_STORE_OPEN: 'the store file belongs to another site id or holds an incompatible schema',
  ERR_STORE_WRITE: 'a local write names an unknown table or column, lacks a primary key value, has a value of the wrong type, or is too large',
  ERR_STORE_BUSY: 'transact or apply was called while a transaction of the same store is running',
  ERR_STORE_CLOSED: 'the store is closed',
  ERR_STORE_DECODE: 'bytes are not a well-formed changeset message',
  ERR_STORE_TOO_LARGE: 'a message is over the byte or changeset cap',
  ERR_CHANGESET_SHAPE: 'a changeset or change is not an object of the expected fields and JS types',
  ERR_CHANGESET_SITE: 'a site id is not 32 lowercase hex characters',
  ERR_CHANGESET_VERSION: 'a db_version or cleared range is not a positive safe integer or is inverted',
  ERR_CHANGESET_SEQ: 'last_seq, the seq range or a change seq is negative, inverted, out of range or repeated',
  ERR_CHANGESET_TABLE: 'a change names a table this store does not declare',
  ERR_CHANGESET_COLUMN: 'a change names a column the table does not declare (or a primary key column)',
  ERR_CHANGESET_PK: 'a primary key has the wrong arity or a value of the wrong type',
  ERR_CHANGESET_VALUE: 'a value does not fit its column type (or is null in a non-nullable column)',
  ERR_CHANGESET_CLOCK: 'a causal length or col_version is impossible (not positive, even on a column write, sentinel mismatch)',
  ERR_CHANGESET_MISMATCH: 'a change carries another site, version or timestamp than its changeset',
  ERR_CHANGESET_TOO_LARGE: 'a changeset has too many changes or a value is over the size cap',
  ERR_CHANGESET_CONFLICT: 'a chunk disagrees with an already buffered chunk of the same version on last_seq or ts',
} as const satisfies Record<string, string>;

/** One of the documented store error codes. */
export type StoreErrorCode = keyof typeof STORE_ERROR_CODES;

/** A code under which `apply` rejects a remote changeset. */
export type RejectCode = Extract<StoreErrorCode, `ERR_CHANGESET_${string}`>;

/** An error of the gossip store, carrying a stable `code`. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}
