import { StorageError } from '../errors.ts';
import {
  ERRNO, FALLOC, FATTR_SIZE, FOPEN, OP, ROOT_ID, S_IFDIR, S_IFREG,
  decodeFallocate, decodeName, decodeRead, decodeWrite, encodeAttrOut, encodeDirent, encodeEntry,
  encodeOpen, encodeStatfs, encodeWriteOut, type Attr, type RequestHeader,
} from './protocol.ts';
import type { ReplySlots } from './reply-slots.ts';

/** A fixed-size file the FUSE server exposes; the storage device implements it. */
export interface FuseFile {
  /** Size in bytes; never changes while the file is served. */
  readonly size: number;
  /**
   * Fills `into` with the bytes at `offset` (the server never asks beyond `size`). Settles only
   * once nothing touches `into` any more, also when it fails: the server reuses the buffer.
   */
  read(offset: number, into: Buffer): Promise<void>;
  /** Writes `data` at `offset`; resolves once a later read sees it. `data` is only valid until then. */
  write(offset: number, data: Buffer): Promise<void>;
  /** Resolves when every write that resolved before the call is durable. */
  fsync(): Promise<void>;
  /** Makes the range read as zeros and frees what it can (fallocate punch-hole / zero-range). */
  discard(offset: number, length: number): Promise<void>;
  /** Bytes currently backed by data (for st_blocks and STATFS). */
  allocatedBytes(): number;
  /** True when writes are refused with EROFS. */
  readonly readOnly?: boolean;
}

/** An error that becomes a specific errno in the reply. */
export class FuseErrno extends Error {
  /** The positive errno value sent (negated) to the kernel. */
  readonly errno: number;

  constructor(errno: number) {
    super(`errno ${errno}`);
    this.name = 'FuseErrno';
    this.errno = errno;
  }
}

interface Node {
  readonly ino: number;
  readonly name: string;
  readonly file: FuseFile;
  lookups: number;
  opens: number;
  removed: boolean;
}

/** Attributes belong to one node id (a re-added name gets a new id), so they may be cached long. */
const VALID_SECONDS = 86_400;
/**
 * Names are re-used for new files (a volume detached and attached again), so the kernel must not
 * cache name -> node: every path walk asks LOOKUP, which is cheap and rare (losetup opens once).
 */
const ENTRY_VALID_SECONDS = 0;
/** Block size of the files and of STATFS (which also makes it the loop device's discard granularity). */
const BLOCK = 4096;

/**
 * The mount's content: one root directory holding fixed-size files, each backed by a
 * {@link FuseFile}, and the answers to every request about them (LOOKUP to FALLOCATE). A node
 * id belongs to one file for good; a removed file's node lives on until the kernel forgets it.
 */
export class ServedFiles {
  readonly #slots: ReplySlots;
  readonly #byName = new Map<string, Node>();
  readonly #byIno = new Map<number, Node>();
  readonly #started = Math.floor(Date.now() / 1000);
  #nextIno = ROOT_ID + 1;
  #nextFh = 1;

  /** READ replies take their buffers from `slots`; the session gives them back after the reply. */
  constructor(slots: ReplySlots) {
    this.#slots = slots;
  }

  /** Serves `file` as `name` in the root directory. */
  add(name: string, file: FuseFile): void {
    if (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,200}$/.test(name)) throw new StorageError('ERR_STORAGE_CONFIG', `bad file name ${JSON.stringify(name)}`);
    if (this.#byName.has(name)) throw new StorageError('ERR_FUSE', `file ${name} is already served`);
    const node: Node = { ino: this.#nextIno++, name, file, lookups: 0, opens: 0, removed: false };
    this.#byName.set(name, node);
    this.#byIno.set(node.ino, node);
  }

  /** Stops serving `name`; fails with ERR_FUSE while the file is open (a loop device still uses it). */
  remove(name: string): void {
    const node = this.#byName.get(name);
    if (!node) return;
    if (node.opens > 0) throw new StorageError('ERR_FUSE', `file ${name} is still open`, { fields: { opens: node.opens } });
    node.removed = true;
    this.#byName.delete(name);
    // The kernel may still hold the inode; it is dropped once FORGET brings its lookups to zero.
    if (node.lookups === 0) this.#byIno.delete(node.ino);
  }

  /** Number of open handles on `name` (0 when not served). */
  opens(name: string): number {
    return this.#byName.get(name)?.opens ?? 0;
  }

  /** FORGET: the kernel dropped `count` lookups of `ino`. */
  forget(ino: number, count: number): void {
    const node = this.#byIno.get(ino);
    if (!node) return;
    node.lookups = Math.max(0, node.lookups - count);
    if (node.removed && node.lookups === 0) this.#byIno.delete(ino);
  }

  /**
   * Answers a request about the directory or its files: the reply's parts, or a thrown error
   * (FuseErrno for a specific errno). An opcode not served here gets ENOSYS.
   */
  handle(header: RequestHeader): Buffer[] | Promise<Buffer[]> {
    const { body, nodeid } = header;
    switch (header.opcode) {
      case OP.LOOKUP: {
        if (nodeid !== ROOT_ID) throw new FuseErrno(ERRNO.ENOTDIR);
        const node = this.#byName.get(decodeName(body));
        if (!node) throw new FuseErrno(ERRNO.ENOENT);
        node.lookups++;
        return [encodeEntry(this.#attr(node.ino), ENTRY_VALID_SECONDS, VALID_SECONDS)];
      }
      case OP.GETATTR:
        return [encodeAttrOut(this.#attr(nodeid), VALID_SECONDS)];
      case OP.SETATTR: {
        // The files have a fixed size; a truncate to anything else is refused, the rest ignored.
        const valid = body.readUInt32LE(0);
        if (nodeid !== ROOT_ID && valid & FATTR_SIZE && Number(body.readBigUInt64LE(16)) !== this.#node(nodeid).file.size) {
          throw new FuseErrno(ERRNO.EPERM);
        }
        return [encodeAttrOut(this.#attr(nodeid), VALID_SECONDS)];
      }
      case OP.OPEN: {
        if (nodeid === ROOT_ID) throw new FuseErrno(ERRNO.EISDIR);
        const node = this.#node(nodeid);
        const accMode = body.readUInt32LE(0) & 3;
        if (node.file.readOnly && accMode !== 0) throw new FuseErrno(ERRNO.EROFS);
        node.opens++;
        // Direct I/O: the kernel keeps no page cache of these files, so the server's view is the
        // only one and ext4's dirty pages never become FUSE dirty pages (see daemon/ioflusher.ts).
        return [encodeOpen(this.#nextFh++, FOPEN.DIRECT_IO | FOPEN.PARALLEL_DIRECT_WRITES)];
      }
      case OP.RELEASE: {
        const node = this.#byIno.get(nodeid);
        if (node) node.opens = Math.max(0, node.opens - 1);
        return [];
      }
      case OP.READ:
        return this.#read(nodeid, body);
      case OP.WRITE:
        return this.#write(nodeid, body);
      case OP.FLUSH:
      case OP.FSYNC:
        return this.#node(nodeid).file.fsync().then(() => []);
      case OP.FALLOCATE:
        return this.#fallocate(nodeid, body);
      case OP.STATFS:
        return [this.#statfs()];
      case OP.OPENDIR:
        if (nodeid !== ROOT_ID) throw new FuseErrno(ERRNO.ENOTDIR);
        return [encodeOpen(0, 0)];
      case OP.READDIR:
        return [this.#readdir(body)];
      case OP.RELEASEDIR:
      case OP.FSYNCDIR:
        return [];
      default:
        // GETXATTR, ACCESS, STATX, SYNCFS...: ENOSYS makes the kernel stop asking.
        throw new FuseErrno(ERRNO.ENOSYS);
    }
  }

  #node(ino: number): Node {
    const node = this.#byIno.get(ino);
    if (!node || node.removed) throw new FuseErrno(ERRNO.ENOENT);
    return node;
  }

  #attr(ino: number): Attr {
    if (ino === ROOT_ID) return { ino, size: 0, blocks: 0, time: this.#started, mode: S_IFDIR | 0o755, nlink: 2, blksize: BLOCK };
    const { file } = this.#node(ino);
    const mode = S_IFREG | (file.readOnly ? 0o400 : 0o600);
    return { ino, size: file.size, blocks: Math.ceil(file.allocatedBytes() / 512), time: this.#started, mode, nlink: 1, blksize: BLOCK };
  }

  async #read(nodeid: number, body: Buffer): Promise<Buffer[]> {
    const { file } = this.#node(nodeid);
    const { offset, size } = decodeRead(body);
    const length = Math.max(0, Math.min(size, file.size - offset));
    if (length === 0) return [];
    const out = this.#slots.take(length);
    try {
      await file.read(offset, out);
    } catch (error) {
      this.#slots.release(out);
      throw error;
    }
    return [out];
  }

  async #write(nodeid: number, body: Buffer): Promise<Buffer[]> {
    const { file } = this.#node(nodeid);
    if (file.readOnly) throw new FuseErrno(ERRNO.EROFS);
    const { offset, data } = decodeWrite(body);
    if (offset + data.length > file.size) throw new FuseErrno(ERRNO.EFBIG);
    await file.write(offset, data);
    return [encodeWriteOut(data.length)];
  }

  async #fallocate(nodeid: number, body: Buffer): Promise<Buffer[]> {
    const { file } = this.#node(nodeid);
    const { offset, length, mode } = decodeFallocate(body);
    if (mode & ~(FALLOC.KEEP_SIZE | FALLOC.PUNCH_HOLE | FALLOC.ZERO_RANGE)) throw new FuseErrno(ERRNO.EOPNOTSUPP);
    if (offset + length > file.size && !(mode & FALLOC.KEEP_SIZE)) throw new FuseErrno(ERRNO.EFBIG);
    if (!(mode & (FALLOC.PUNCH_HOLE | FALLOC.ZERO_RANGE))) return []; // plain allocation: nothing to reserve
    if (file.readOnly) throw new FuseErrno(ERRNO.EROFS);
    const end = Math.min(file.size, offset + length);
    if (end > offset) await file.discard(offset, end - offset);
    return [];
  }

  #statfs(): Buffer {
    let size = 0;
    let used = 0;
    for (const node of this.#byName.values()) {
      size += node.file.size;
      used += node.file.allocatedBytes();
    }
    const blocks = Math.ceil(size / BLOCK);
    const free = Math.max(0, blocks - Math.ceil(used / BLOCK));
    // bsize also becomes the loop device's discard granularity.
    return encodeStatfs({ blocks, bfree: free, bavail: free, files: this.#byName.size + 1, ffree: 0, bsize: BLOCK });
  }

  #readdir(body: Buffer): Buffer {
    const { offset, size } = decodeRead(body);
    const entries: Array<[number, string, number]> = [[ROOT_ID, '.', 4], [ROOT_ID, '..', 4]];
    for (const node of this.#byName.values()) entries.push([node.ino, node.name, 8]);
    const parts: Buffer[] = [];
    let used = 0;
    for (let i = offset; i < entries.length; i++) {
      const [ino, name, type] = entries[i]!;
      const dirent = encodeDirent(ino, i + 1, name, type);
      if (used + dirent.length > size) break;
      parts.push(dirent);
      used += dirent.length;
    }
    return Buffer.concat(parts);
  }
}
