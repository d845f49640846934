import { spawn } from 'node:child_process';
import { closeSync, openSync, writevSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { alignedMemory } from '../aligned.ts';
import { StorageError, describe } from '../errors.ts';
import type { Logger } from '../logger.ts';
import {
  ERRNO, FALLOC, FATTR_SIZE, FOPEN, FUSE_MAJOR, FUSE_MINOR, INIT, OP, OUT_HEADER, ROOT_ID, S_IFDIR, S_IFREG,
  decodeFallocate, decodeHeader, decodeInit, decodeName, decodeRead, decodeWrite, encodeAttrOut, encodeDirent, encodeEntry,
  encodeInit, encodeOpen, encodeStatfs, encodeWriteOut, writeOutHeader, type Attr, type RequestHeader,
} from './protocol.ts';
import { startReader, type Reader, type ReaderMessage } from './reader.ts';

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

/** Options of a FUSE server. */
export interface FuseServerInit {
  /** Directory to mount on; created if missing. */
  mountpoint: string;
  logger: Logger;
  /** Reader threads doing blocking reads of /dev/fuse. @default 2 */
  readers?: number;
  /** Largest WRITE the kernel may send, in bytes (a multiple of 4096, at most 1 MiB). @default 1048576 */
  maxWrite?: number;
  /** Async requests the kernel keeps in flight (max_background). @default 128 */
  maxBackground?: number;
  /** Name shown as the mount's source in /proc/mounts. @default 'sprite-storage' */
  source?: string;
}

/** Documented defaults of {@link FuseServerInit}. */
export const FUSE_DEFAULTS = { readers: 2, maxWrite: 1024 * 1024, maxBackground: 128, source: 'sprite-storage' } as const;

/** Counters of a FUSE server. */
export interface FuseStats {
  requests: number;
  inflight: number;
  errors: number;
  byOpcode: Record<number, number>;
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
const BLOCK = 4096;
/** Bytes of page-aligned READ reply slots (the loop device reads 512 KiB or 1 MiB at a time). */
const REPLY_SLOT_BYTES = 16 * 1024 * 1024;
/** Smaller READ replies are cheap to allocate from Node's pool. */
const POOLED_READ = 64 * 1024;

/**
 * A FUSE filesystem spoken directly over /dev/fuse: one root directory holding fixed-size files
 * (one per volume), each backed by a {@link FuseFile}. Requests are read by worker threads and
 * answered on the main thread; every request that expects a reply gets exactly one, and an
 * internal error becomes EIO.
 */
export class FuseServer {
  /** The mounted directory. */
  readonly mountpoint: string;
  readonly #logger: Logger;
  readonly #init: FuseServerInit;
  readonly #fd: number;
  readonly #readers: Reader[] = [];
  readonly #byName = new Map<string, Node>();
  readonly #byIno = new Map<number, Node>();
  readonly #started = Math.floor(Date.now() / 1000);
  readonly #stats: FuseStats = { requests: 0, inflight: 0, errors: 0, byOpcode: {} };
  /**
   * Reply slots of large READs, carved from one page-aligned arena on first use: a reply is
   * written synchronously, so its slot is free again right after it (allocating 512 KiB per READ
   * kept the GC and page faults busy), and the alignment lets the cache read with O_DIRECT.
   */
  #replyArena: SharedArrayBuffer | undefined;
  readonly #replySlots: Buffer[] = [];
  /** Largest WRITE (and READ) the kernel sends: negotiated at INIT, and the size of a reply slot. */
  readonly #maxWrite: number;
  #nextIno = ROOT_ID + 1;
  #nextFh = 1;
  #mounted = false;
  #ended = false;
  #initialized = Promise.withResolvers<void>();
  #closed = Promise.withResolvers<void>();

  private constructor(init: FuseServerInit, fd: number) {
    this.mountpoint = init.mountpoint;
    this.#init = init;
    this.#maxWrite = init.maxWrite ?? FUSE_DEFAULTS.maxWrite;
    this.#logger = init.logger;
    this.#fd = fd;
    // Nobody may be left waiting on INIT if the session dies first.
    this.#initialized.promise.catch(() => undefined);
  }

  /** Opens /dev/fuse, starts the readers, mounts and waits for the kernel's INIT. */
  static async start(init: FuseServerInit): Promise<FuseServer> {
    const maxWrite = init.maxWrite ?? FUSE_DEFAULTS.maxWrite;
    if (maxWrite % BLOCK !== 0 || maxWrite < BLOCK || maxWrite > 1024 * 1024) {
      throw new StorageError('ERR_STORAGE_CONFIG', `maxWrite must be a multiple of 4096 up to 1 MiB, got ${maxWrite}`);
    }
    await mkdir(init.mountpoint, { recursive: true });
    let fd: number;
    try {
      fd = openSync('/dev/fuse', 'r+');
    } catch (error) {
      throw new StorageError('ERR_FUSE', `open /dev/fuse: ${describe(error)}`, { cause: error });
    }
    const server = new FuseServer(init, fd);
    try {
      await server.#mount();
      // Readers start after the mount: before it, read(2) on the device fails with EPERM.
      // The kernel queues INIT meanwhile. It refuses reads smaller than one WRITE plus headers.
      const bufferSize = maxWrite + 4096;
      for (let i = 0; i < (init.readers ?? FUSE_DEFAULTS.readers); i++) {
        const reader = startReader(fd, bufferSize, (message) => server.#onMessage(reader, message));
        server.#readers.push(reader);
      }
      await server.#initialized.promise;
      return server;
    } catch (error) {
      await server.stop({ force: true }).catch(() => undefined);
      throw error;
    }
  }

  /** Serves `file` as `<mountpoint>/<name>` and returns that path. */
  add(name: string, file: FuseFile): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,200}$/.test(name)) throw new StorageError('ERR_STORAGE_CONFIG', `bad file name ${JSON.stringify(name)}`);
    if (this.#byName.has(name)) throw new StorageError('ERR_FUSE', `file ${name} is already served`);
    const node: Node = { ino: this.#nextIno++, name, file, lookups: 0, opens: 0, removed: false };
    this.#byName.set(name, node);
    this.#byIno.set(node.ino, node);
    return join(this.mountpoint, name);
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

  /** Request counters. */
  stats(): FuseStats {
    return { ...this.#stats, byOpcode: { ...this.#stats.byOpcode } };
  }

  /** Resolves when the session has ended (unmounted or aborted). */
  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  /**
   * Unmounts and waits for the readers to end. With `force`, a busy mount is detached lazily and
   * the connection aborted, so pending requests fail instead of hanging.
   */
  async stop(options: { force?: boolean } = {}): Promise<void> {
    if (this.#mounted) {
      try {
        await run('umount', [this.mountpoint]);
      } catch (error) {
        if (!options.force) throw error;
        await abortConnection(this.mountpoint).catch(() => undefined);
        await run('umount', ['-l', this.mountpoint]).catch(() => undefined);
      }
      this.#mounted = false;
    } else if (options.force) {
      await abortConnection(this.mountpoint).catch(() => undefined);
    }
    // With the connection gone every blocked read returns ENODEV and its reader exits.
    await Promise.all(this.#readers.map((reader) => reader.exited.then(() => undefined, () => undefined)));
    try {
      closeSync(this.#fd);
    } catch {
      // Already closed.
    }
    this.#end('stopped');
  }

  async #mount(): Promise<void> {
    const source = this.#init.source ?? FUSE_DEFAULTS.source;
    // `-i` calls mount(2) directly (no mount.fuse helper); the helper would want to open
    // /dev/fuse itself. The device fd is inherited as fd 3 of the mount process.
    const options = `fd=3,rootmode=${S_IFDIR.toString(8)},user_id=0,group_id=0,default_permissions`;
    await new Promise<void>((resolve, reject) => {
      const child = spawn('mount', ['-i', '-t', `fuse.${source}`, '-o', options, source, this.mountpoint], {
        stdio: ['ignore', 'ignore', 'pipe', this.#fd],
      });
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk; });
      child.on('error', (error) => reject(new StorageError('ERR_FUSE', `mount fuse: ${error.message}`, { cause: error })));
      child.on('exit', (code) => {
        if (code === 0) resolve();
        else reject(new StorageError('ERR_FUSE', `mount fuse at ${this.mountpoint}: ${stderr.trim() || `exit ${code}`}`));
      });
    });
    this.#mounted = true;
  }

  #onMessage(reader: Reader, message: ReaderMessage): void {
    if (message.end !== undefined) {
      if (message.end !== 'ENODEV') this.#logger.error('fuse reader ended', { reason: message.end });
      this.#end(message.end);
      return;
    }
    if (message.slot !== undefined) {
      const slot = message.slot;
      this.#dispatch(reader.view(slot, message.n), () => reader.giveBack(slot));
      return;
    }
    this.#dispatch(Buffer.from(message.buf, 0, message.n), undefined);
  }

  #end(reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#initialized.reject(new StorageError('ERR_FUSE', `fuse session ended before INIT: ${reason}`));
    this.#closed.resolve();
  }

  #dispatch(buffer: Buffer, giveBack: (() => void) | undefined): void {
    let header: RequestHeader;
    try {
      header = decodeHeader(buffer);
    } catch (error) {
      this.#logger.error('fuse request undecodable', { bytes: buffer.length, error: describe(error) });
      giveBack?.();
      return;
    }
    const opcode = header.opcode;
    this.#stats.requests++;
    this.#stats.byOpcode[opcode] = (this.#stats.byOpcode[opcode] ?? 0) + 1;
    // These three never get a reply: FORGET and BATCH_FORGET by protocol, and INTERRUPT because
    // every request here is answered anyway (ignoring it is allowed).
    if (opcode === OP.FORGET || opcode === OP.BATCH_FORGET || opcode === OP.INTERRUPT) {
      if (opcode === OP.FORGET) this.#forget(header.nodeid, Number(header.body.readBigUInt64LE(0)));
      if (opcode === OP.BATCH_FORGET) {
        const count = header.body.readUInt32LE(0);
        for (let i = 0; i < count; i++) {
          this.#forget(Number(header.body.readBigUInt64LE(8 + i * 16)), Number(header.body.readBigUInt64LE(16 + i * 16)));
        }
      }
      giveBack?.();
      return;
    }
    this.#stats.inflight++;
    let replied = false;
    const reply = (error: number, parts: Buffer[]) => {
      if (replied) {
        this.#logger.error('fuse double reply suppressed', { opcode, unique: String(header.unique) });
        return;
      }
      replied = true;
      this.#stats.inflight--;
      if (error !== 0) this.#stats.errors++;
      this.#write(header.unique, error, parts);
      giveBack?.();
      if (opcode === OP.READ && parts[0]) this.#releaseReplySlot(parts[0]);
    };
    let result: Promise<Buffer[]> | Buffer[];
    try {
      result = this.#handle(header);
    } catch (error) {
      reply(this.#errno(error, header), []);
      return;
    }
    if (Array.isArray(result)) {
      reply(0, result);
      return;
    }
    result.then((parts) => reply(0, parts), (error: unknown) => reply(this.#errno(error, header), []));
  }

  #errno(error: unknown, header: RequestHeader): number {
    if (error instanceof FuseErrno) return error.errno;
    const code = (error as { code?: string }).code;
    if (code === 'ERR_DEVICE_RANGE') return ERRNO.EINVAL;
    if (code === 'ERR_LEASE_LOST') return ERRNO.EROFS;
    this.#logger.error('fuse request failed', {
      opcode: header.opcode, node: header.nodeid, error: describe(error), ...(error as { fields?: Record<string, unknown> }).fields,
    });
    return ERRNO.EIO;
  }

  #write(unique: bigint, error: number, parts: Buffer[]): void {
    const header = Buffer.allocUnsafe(OUT_HEADER);
    let len = OUT_HEADER;
    if (error === 0) for (const part of parts) len += part.length;
    writeOutHeader(header, len, error, unique);
    try {
      // A reply write only copies into the waiting request; it does not block.
      writevSync(this.#fd, error === 0 ? [header, ...parts] : [header]);
    } catch (writeError) {
      // ENOENT: the kernel already gave up on this request (interrupted or aborted).
      const code = (writeError as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENODEV') this.#logger.error('fuse reply failed', { unique: String(unique), error: describe(writeError) });
    }
  }

  #forget(ino: number, count: number): void {
    const node = this.#byIno.get(ino);
    if (!node) return;
    node.lookups = Math.max(0, node.lookups - count);
    if (node.removed && node.lookups === 0) this.#byIno.delete(ino);
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

  #handle(header: RequestHeader): Buffer[] | Promise<Buffer[]> {
    const { body, nodeid } = header;
    switch (header.opcode) {
      case OP.INIT:
        return [this.#negotiate(body)];
      case OP.DESTROY:
        return [];
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
        return this.#writeData(nodeid, body);
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

  #negotiate(body: Buffer): Buffer {
    const kernel = decodeInit(body);
    if (kernel.major !== FUSE_MAJOR) throw new FuseErrno(ERRNO.EINVAL);
    const maxWrite = this.#maxWrite;
    const maxBackground = this.#init.maxBackground ?? FUSE_DEFAULTS.maxBackground;
    // Only flags the kernel offered may be accepted. ASYNC_DIO lets the loop device's direct
    // I/O keep many requests in flight; MAX_PAGES allows 1 MiB requests.
    const wanted = INIT.ASYNC_READ | INIT.BIG_WRITES | INIT.ASYNC_DIO | INIT.MAX_PAGES | INIT.PARALLEL_DIROPS;
    const flags = kernel.flags & wanted;
    this.#logger.info('fuse session initialized', {
      kernel: `${kernel.major}.${kernel.minor}`, minor: Math.min(kernel.minor, FUSE_MINOR), flags: flags.toString(16), maxWrite,
    });
    queueMicrotask(() => this.#initialized.resolve());
    return encodeInit({
      minor: Math.min(kernel.minor, FUSE_MINOR),
      maxReadahead: kernel.maxReadahead,
      flags,
      maxBackground,
      congestionThreshold: Math.floor((maxBackground * 3) / 4),
      maxWrite,
      maxPages: maxWrite / BLOCK,
    });
  }

  async #read(nodeid: number, body: Buffer): Promise<Buffer[]> {
    const { file } = this.#node(nodeid);
    const { offset, size } = decodeRead(body);
    const length = Math.max(0, Math.min(size, file.size - offset));
    if (length === 0) return [];
    const out = (length >= POOLED_READ ? this.#replySlot(length) : undefined) ?? Buffer.allocUnsafe(length);
    try {
      await file.read(offset, out);
    } catch (error) {
      this.#releaseReplySlot(out);
      throw error;
    }
    return [out];
  }

  /** A free reply slot holding `length` bytes, or undefined when all are in use. */
  #replySlot(length: number): Buffer | undefined {
    if (!this.#replyArena) {
      this.#replyArena = alignedMemory(REPLY_SLOT_BYTES);
      for (let at = 0; at + this.#maxWrite <= REPLY_SLOT_BYTES; at += this.#maxWrite) this.#replySlots.push(Buffer.from(this.#replyArena, at, this.#maxWrite));
    }
    return length <= this.#maxWrite ? this.#replySlots.pop()?.subarray(0, length) : undefined;
  }

  #releaseReplySlot(buffer: Buffer): void {
    if (this.#replyArena && buffer.buffer === this.#replyArena) {
      this.#replySlots.push(Buffer.from(this.#replyArena, buffer.byteOffset, this.#maxWrite));
    }
  }

  async #writeData(nodeid: number, body: Buffer): Promise<Buffer[]> {
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

async function run(file: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk; });
    child.on('error', reject);
    child.on('exit', (code) => code === 0 ? resolve() : reject(new StorageError('ERR_FUSE', `${file} ${args.join(' ')}: ${stderr.trim() || `exit ${code}`}`)));
  });
}

/**
 * Aborts the FUSE connection mounted at `mountpoint` through /sys/fs/fuse/connections, so
 * requests pending on a dead server fail with ENOTCONN. The device number comes from
 * /proc/self/mountinfo: stat(2) on the mountpoint would itself wait on the server.
 */
export async function abortConnection(mountpoint: string): Promise<void> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] !== mountpoint) continue;
    const minor = fields[2]?.split(':')[1];
    if (minor === undefined) continue;
    await writeFile(`/sys/fs/fuse/connections/${minor}/abort`, '1').catch(() => undefined);
  }
}
