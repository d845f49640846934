/** One listed object. */
export interface ObjectInfo {
  /** Key relative to the store's root (prefix already removed). */
  key: string;
  size: number;
  /** Last modification, milliseconds since the epoch. */
  modified: number;
}

/** An object's bytes and its entity tag. */
export interface StoredObject {
  body: Buffer;
  /** Opaque version tag; changes whenever the object is replaced. */
  etag: string;
}

/** Conditions of a put. */
export interface PutOptions {
  /** Fail with ERR_PRECONDITION_FAILED if the key exists (If-None-Match: *). */
  ifNoneMatch?: boolean;
  /** Fail with ERR_PRECONDITION_FAILED unless the current etag is this one (If-Match). */
  ifMatch?: string;
}

/**
 * A flat key/value object store: the durable home of data objects and volume metadata.
 * Keys are `/`-separated relative paths without a leading slash. Every method may fail with
 * ERR_STORE_UNAVAILABLE when the store cannot be reached; callers retry.
 */
export interface ObjectStore {
  /** The store's URL with any credentials removed, for logs. */
  readonly url: string;
  /**
   * Whether `put` honours `ifNoneMatch` / `ifMatch`. Some S3-protocol servers ignore the
   * headers; callers must then not rely on them for correctness (fencing uses epochs too).
   */
  readonly conditionalWrites: boolean;
  /** Reads a whole object; fails with ERR_OBJECT_NOT_FOUND when the key does not exist. */
  get(key: string): Promise<StoredObject>;
  /**
   * Stores `body` under `key`, replacing any object there unless a condition says otherwise.
   * Resolves only once the object is durable; a put that fails leaves either the old or the new
   * object, never a torn one.
   */
  put(key: string, body: Buffer, options?: PutOptions): Promise<{ etag: string }>;
  /**
   * Optional, for stores on the local filesystem: stores the bytes of the file at `path` under
   * `key` without copying them (a hard link). The object is visible at once but durable only
   * once a later `syncFiles` resolves. The caller must never modify that file afterwards, since
   * the object is the same inode. Fails with ERR_STORE_UNAVAILABLE and `fields.errno` 'EXDEV'
   * when the file is on another filesystem (the caller then puts).
   */
  putFile?(key: string, path: string): Promise<{ etag: string; size: number }>;
  /** With `putFile`: makes every object it stored before the call durable. */
  syncFiles?(): Promise<void>;
  /** Deletes `key`; deleting a missing key is not an error (idempotent). */
  delete(key: string): Promise<void>;
  /** Lists the objects whose key starts with `prefix`, in lexical key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Releases connections; the store is unusable afterwards. */
  close(): Promise<void>;
}

/** Collects a listing into an array. */
export async function listAll(store: ObjectStore, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of store.list(prefix)) out.push(info);
  return out;
}
