import { Decoder, Encoder } from 'cbor-x';
import { StoreError } from './errors.ts';
import type { Change, Changeset } from './types.ts';

/**
 * Wire format, version 1 — a CBOR array `[1, [changeset...]]` where a changeset is
 * `[site_id, db_version, last_seq, seq_from, seq_to, ts, cleared_to | null, [change...]]` and a change
 * is `[table, pk[], cid, val, col_version, seq, cl]`; a change's site_id, db_version and ts are its
 * changeset's. Blobs are CBOR byte strings, ts an unsigned integer.
 */
export const WIRE_VERSION = 1;

/** Caps of the codec. */
export interface CodecLimits {
  /** Bytes of one encoded message. @default 4 MiB */
  maxBytes: number;
  /** Changesets in one message. @default 4096 */
  maxChangesets: number;
}

/** Default codec caps. */
export const CODEC_DEFAULTS: CodecLimits = Object.freeze({ maxBytes: 4 * 1024 * 1024, maxChangesets: 4096 });

/** Encodes changesets for the wire; throws ERR_STORE_TOO_LARGE over the caps (chunk first: `chunkChangeset`). */
export function encodeChangesets(list: readonly Changeset[], limits: CodecLimits = CODEC_DEFAULTS): Uint8Array {
  if (list.length > limits.maxChangesets) throw new StoreError('ERR_STORE_TOO_LARGE', `${list.length} changesets, over ${limits.maxChangesets}`);
  const wire = list.map((cs) => [
    cs.site_id, cs.db_version, cs.last_seq, cs.seqs[0], cs.seqs[1], cs.ts, cs.cleared_to ?? null,
    cs.changes.map((c) => [c.table, c.pk, c.cid, c.val, c.col_version, c.seq, c.cl]),
  ]);
  const bytes = new Encoder({ useRecords: false, tagUint8Array: false }).encode([WIRE_VERSION, wire]);
  if (bytes.byteLength > limits.maxBytes) throw new StoreError('ERR_STORE_TOO_LARGE', `message of ${bytes.byteLength} bytes, over ${limits.maxBytes}`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Decodes a message into changesets with the right shape and JS types; it does not check them
 * against a schema (`validateChangeset` and `apply` do). Throws a StoreError with code
 * ERR_STORE_TOO_LARGE or ERR_STORE_DECODE on anything else, never another error.
 */
export function decodeChangesets(bytes: Uint8Array, limits: CodecLimits = CODEC_DEFAULTS): Changeset[] {
  if (!(bytes instanceof Uint8Array)) throw new StoreError('ERR_STORE_DECODE', 'message is not bytes');
  if (bytes.byteLength > limits.maxBytes) throw new StoreError('ERR_STORE_TOO_LARGE', `message of ${bytes.byteLength} bytes, over ${limits.maxBytes}`);
  let decoded: unknown;
  try {
    decoded = new Decoder({ useRecords: false, mapsAsObjects: true }).decode(bytes);
  } catch (error) {
    // cbor-x throws plain errors (and RangeError on absurd nesting) for malformed input.
    throw new StoreError('ERR_STORE_DECODE', `malformed cbor: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
  try {
    return fromWire(decoded, limits);
  } catch (error) {
    if (error instanceof StoreError) throw error;
    throw new StoreError('ERR_STORE_DECODE', `malformed message: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
}

function fail(message: string): never {
  throw new StoreError('ERR_STORE_DECODE', message);
}

function int(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  return fail(`${what} is not an integer`);
}

function fromWire(decoded: unknown, limits: CodecLimits): Changeset[] {
  if (!Array.isArray(decoded) || decoded.length !== 2) fail('message is not [version, changesets]');
  if (decoded[0] !== WIRE_VERSION) fail(`unknown wire version ${String(decoded[0]).slice(0, 20)}`);
  const list: unknown = decoded[1];
  if (!Array.isArray(list)) fail('changesets is not an array');
  if (list.length > limits.maxChangesets) throw new StoreError('ERR_STORE_TOO_LARGE', `${list.length} changesets, over ${limits.maxChangesets}`);
  return list.map((item: unknown): Changeset => {
    if (!Array.isArray(item) || item.length !== 8) fail('changeset is not an 8-element array');
    const [site_id, db_version, last_seq, from, to, rawTs, cleared, changes] = item as unknown[];
    if (typeof site_id !== 'string') fail('site_id is not a string');
    const ts = typeof rawTs === 'bigint' ? rawTs : typeof rawTs === 'number' && Number.isSafeInteger(rawTs) && rawTs >= 0 ? BigInt(rawTs) : fail('ts is not an unsigned integer');
    if (!Array.isArray(changes)) fail('changes is not an array');
    const cs: Changeset = { site_id, db_version: int(db_version, 'db_version'), last_seq: int(last_seq, 'last_seq'), seqs: [int(from, 'seq_from'), int(to, 'seq_to')], ts, changes: [] };
    if (cleared !== null) cs.cleared_to = int(cleared, 'cleared_to');
    cs.changes = changes.map((raw: unknown): Change => {
      if (!Array.isArray(raw) || raw.length !== 7) fail('change is not a 7-element array');
      const [table, pk, cid, val, col_version, seq, cl] = raw as unknown[];
      if (typeof table !== 'string' || typeof cid !== 'string') fail('table or cid is not a string');
      if (!Array.isArray(pk)) fail('pk is not an array');
      return {
        table, pk: pk.map(wireValue), cid, val: wireValue(val), col_version: int(col_version, 'col_version'),
        db_version: cs.db_version, seq: int(seq, 'seq'), site_id, cl: int(cl, 'cl'), ts,
      };
    });
    return cs;
  });
}

function wireValue(value: unknown): Change['val'] {
  if (value === null || typeof value === 'string' || typeof value === 'number') return value;
  // Byte strings decode as Buffer; hand out plain Uint8Arrays.
  if (value instanceof Uint8Array && value.constructor === Buffer) return new Uint8Array(value);
  if (value instanceof Uint8Array && value.constructor === Uint8Array) return value;
  return fail('value is not null, a number, a string or bytes');
}
