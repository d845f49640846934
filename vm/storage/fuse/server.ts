import { closeSync, openSync, writevSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageError, describe } from '../errors.ts';
import type { Logger } from '../../logger.ts';
import { FuseErrno, ServedFiles, type FuseFile } from './files.ts';
import { abortConnection, mountFuse, unmount } from './mount.ts';
import {
  ERRNO, FUSE_MAJOR, FUSE_MINOR, INIT, OP, OUT_HEADER, decodeHeader, decodeInit, encodeInit, writeOutHeader, type RequestHeader,
} from './protocol.ts';
import { startReader, type Reader, type ReaderMessage } from './reader.ts';
import { ReplySlots } from './reply-slots.ts';

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

/** The kernel's page: max_write is a whole number of pages (max_pages). */
const PAGE = 4096;

/**
 * A FUSE session spoken directly over /dev/fuse, serving the files of a {@link ServedFiles}
 * (one root directory, one fixed-size file per volume). Requests are read by worker threads and
 * answered on the main thread; every request that expects a reply gets exactly one, and an
 * internal error becomes EIO. This class is the session: mount, readers, INIT, dispatch and
 * reply writing; what each request about a file means is in files.ts.
 */
export class FuseServer {
  /** The mounted directory. */
  readonly mountpoint: string;
  readonly #logger: Logger;
  readonly #init: FuseServerInit;
  readonly #fd: number;
  readonly #readers: Reader[] = [];
  readonly #files: ServedFiles;
  readonly #stats: FuseStats = { requests: 0, inflight: 0, errors: 0, byOpcode: {} };
  readonly #replySlots: ReplySlots;
  /** Largest WRITE (and READ) the kernel sends: negotiated at INIT, and the size of a reply slot. */
  readonly #maxWrite: number;
  #mounted = false;
  #ended = false;
  #initialized = Promise.withResolvers<void>();
  #closed = Promise.withResolvers<void>();

  private constructor(init: FuseServerInit, fd: number) {
    this.mountpoint = init.mountpoint;
    this.#init = init;
    this.#maxWrite = init.maxWrite ?? FUSE_DEFAULTS.maxWrite;
    this.#replySlots = new ReplySlots(this.#maxWrite);
    this.#files = new ServedFiles(this.#replySlots);
    this.#logger = init.logger;
    this.#fd = fd;
    // Nobody may be left waiting on INIT if the session dies first.
    this.#initialized.promise.catch(() => undefined);
  }

  /** Opens /dev/fuse, starts the readers, mounts and waits for the kernel's INIT. */
  static async start(init: FuseServerInit): Promise<FuseServer> {
    const maxWrite = init.maxWrite ?? FUSE_DEFAULTS.maxWrite;
    if (maxWrite % PAGE !== 0 || maxWrite < PAGE || maxWrite > 1024 * 1024) {
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
      await mountFuse(fd, init.mountpoint, init.source ?? FUSE_DEFAULTS.source);
      server.#mounted = true;
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
    this.#files.add(name, file);
    return join(this.mountpoint, name);
  }

  /** Stops serving `name`; fails with ERR_FUSE while the file is open (a loop device still uses it). */
  remove(name: string): void {
    this.#files.remove(name);
  }

  /** Number of open handles on `name` (0 when not served). */
  opens(name: string): number {
    return this.#files.opens(name);
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
      await unmount(this.mountpoint, options.force ?? false);
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
      if (opcode === OP.FORGET) this.#files.forget(header.nodeid, Number(header.body.readBigUInt64LE(0)));
      if (opcode === OP.BATCH_FORGET) {
        const count = header.body.readUInt32LE(0);
        for (let i = 0; i < count; i++) {
          this.#files.forget(Number(header.body.readBigUInt64LE(8 + i * 16)), Number(header.body.readBigUInt64LE(16 + i * 16)));
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
      if (opcode === OP.READ && parts[0]) this.#replySlots.release(parts[0]);
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

  /** The session's own requests here; everything about the directory and its files in ServedFiles. */
  #handle(header: RequestHeader): Buffer[] | Promise<Buffer[]> {
    if (header.opcode === OP.INIT) return [this.#negotiate(header.body)];
    if (header.opcode === OP.DESTROY) return [];
    return this.#files.handle(header);
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
      maxPages: maxWrite / PAGE,
    });
  }
}
