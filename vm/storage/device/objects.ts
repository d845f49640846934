import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { StorageError } from '../errors.ts';

/** Hex characters of the random part of an object id (96 bits). */
const RANDOM_HEX = 24;
/** Hex characters of the checksum part (CRC-32 of the contents). */
const SUM_HEX = 8;

/**
 * The checksum of an object's contents: CRC-32 (zlib, about 4 GiB/s here against 1.2 GiB/s for
 * sha256 on the thread that answers FUSE requests). Together with the length check it catches
 * truncation, bit rot and torn writes; it is not meant to resist a malicious store.
 */
export function checksum(data: Buffer): string {
  return crc32(data).toString(16).padStart(SUM_HEX, '0');
}

/**
 * A new unique object id for a unit's contents: 96 random bits (keys are unique even for equal
 * contents, and spread over S3 partitions) followed by the contents' checksum, which makes every
 * object self-verifying.
 */
export function newObjectId(data: Buffer): string {
  return randomBytes(RANDOM_HEX / 2).toString('hex') + checksum(data);
}

/** The store key of a data object. */
export function objectKey(id: string): string {
  return `objects/${id}`;
}

/** The object id of a data-object key, or undefined for other keys. */
export function objectIdOfKey(key: string): string | undefined {
  const match = /^objects\/([0-9a-f]{32})$/.exec(key);
  return match?.[1];
}

/** Throws ERR_OBJECT_CORRUPT unless `data` has the expected length and the checksum in `id`. */
export function verifyObject(id: string, data: Buffer, expectedLength: number): void {
  if (data.length !== expectedLength) {
    throw new StorageError('ERR_OBJECT_CORRUPT', `object ${id} has ${data.length} bytes, expected ${expectedLength}`, {
      fields: { object: id, key: objectKey(id), bytes: data.length },
    });
  }
  if (checksum(data) !== id.slice(RANDOM_HEX)) {
    throw new StorageError('ERR_OBJECT_CORRUPT', `object ${id} failed its checksum`, { fields: { object: id, key: objectKey(id) } });
  }
}

/** True when every byte of `data` is zero. */
export function isZero(data: Buffer, zeros: Buffer): boolean {
  return data.length === zeros.length ? data.equals(zeros) : data.equals(zeros.subarray(0, data.length));
}

/** An object id for contents whose CRC-32 is already known (see {@link crc32Combine}). */
export function objectIdWithChecksum(crc: number): string {
  return randomBytes(RANDOM_HEX / 2).toString('hex') + (crc >>> 0).toString(16).padStart(SUM_HEX, '0');
}

const POLY = 0xedb88320;

/** a(x) * b(x) modulo the CRC-32 polynomial (bit-reflected, as zlib). */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) modulo the polynomial. */
const X2N = new Uint32Array(32);
X2N[0] = 0x40000000;
for (let k = 1; k < 32; k++) X2N[k] = multModP(X2N[k - 1]!, X2N[k - 1]!);

/**
 * The CRC-32 of A followed by B from crc(A), crc(B) and B's length (zlib's crc32_combine, which
 * Node does not expose): lets a unit written in pieces get its checksum without reading it back.
 */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  let p = 0x80000000;
  for (let n = lengthB, k = 3; n > 0; n = Math.floor(n / 2), k++) if (n & 1) p = multModP(X2N[k & 31]!, p);
  return (multModP(p, crcA) ^ crcB) >>> 0;
}
