/** Stable codes of storage errors, each with the one-line meaning that docs/STORAGE.md repeats. */
export const STORAGE_ERROR_CODES = {
  ERR_STORAGE_CONFIG: 'an option or object-store URL is invalid',
  ERR_OBJECT_NOT_FOUND: 'an object the block map references is missing from the object store',
  ERR_OBJECT_CORRUPT: 'an object failed its checksum or has the wrong length',
  ERR_STORE_UNAVAILABLE: 'the object store did not answer or answered with an error',
  ERR_PRECONDITION_FAILED: 'a conditional write lost a race (the object changed or already exists)',
  ERR_METADATA_CORRUPT: 'a metadata log record or snapshot cannot be decoded or does not chain',
  ERR_VOLUME_NOT_FOUND: 'no such volume, locally or in the object store',
  ERR_VOLUME_EXISTS: 'a volume with this id already exists',
  ERR_VOLUME_MOUNTED: 'the operation needs the volume unmounted',
  ERR_CHECKPOINT_NOT_FOUND: 'no such checkpoint of this volume',
  ERR_LEASE_HELD: 'another owner holds the volume lease and it has not expired',
  ERR_LEASE_LOST: 'this writer was fenced: a newer epoch took the volume lease',
  ERR_DEVICE_RANGE: 'an I/O request falls outside the device',
  ERR_DEVICE_STOPPED: 'the device was stopped while a request was in flight',
  ERR_FUSE: 'the FUSE session failed (device, protocol or mount)',
  ERR_MOUNT: 'a mount, loop or filesystem command failed',
  ERR_DAEMON: 'the storage daemon is not running or died',
} as const;

/** One of the stable storage error codes. */
export type StorageErrorCode = keyof typeof STORAGE_ERROR_CODES;

/** An error from the storage layer with a stable `code`, a short lowercase message and structured context. */
export class StorageError extends Error {
  /** Stable machine-readable code, e.g. `ERR_OBJECT_CORRUPT`. */
  readonly code: StorageErrorCode;
  /** Structured context (object key, volume id, ...) for logs. */
  readonly fields: Record<string, unknown>;

  constructor(code: StorageErrorCode, message: string, options: { cause?: unknown; fields?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StorageError';
    this.code = code;
    this.fields = options.fields ?? {};
  }
}

/** True when `error` carries the storage error code `code` (checked by code, not by class). */
export function hasCode(error: unknown, code: StorageErrorCode): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

/** A short description of any thrown value for log lines. */
export function describe(error: unknown): string {
  if (error instanceof Error) return (error as { code?: string }).code ? `${(error as { code?: string }).code}: ${error.message}` : error.message;
  return String(error);
}
