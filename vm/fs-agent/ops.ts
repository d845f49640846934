/**
 * The file agent's streaming operations: read (the file's bytes follow the answer), write (the
 * body's bytes go to the file, the answer follows) and list (entries follow, one JSON line each).
 * Every path is absolute and resolved by the kernel inside the sprite's own root.
 */
import { constants, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { basename, dirname, matchesGlob } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { entryOf, errno, octal, walk } from './files.ts';
import { headerFrame, type RequestReader } from './wire.ts';

// Files that report size 0 may still have content (/proc, /sys): read up to this much to find out.
const UNSIZED_MAX = 16 * 1024 * 1024;
const CHUNK = 1024 * 1024;

/** Connections whose answer went out: a later failure can only cut them. */
export const answered = new WeakSet<Socket>();

/** Sends the answer's header frame. */
export function answer(socket: Socket, result: unknown): void {
  answered.add(socket);
  socket.write(headerFrame({ ok: true, result }));
}

/** Sends a file's bytes: `{size}`, then exactly size bytes. */
export async function readFile(request: { path: string }, socket: Socket): Promise<void> {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore it).
  const handle = await open(request.path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stats = await handle.stat();
    regularFile(stats, request.path, 'read');
    if (stats.size === 0) {
      const chunks: Buffer[] = [];
      let total = 0;
      while (total < UNSIZED_MAX) {
        const { buffer, bytesRead } = await handle.read({ buffer: Buffer.allocUnsafe(64 * 1024), position: null });
        if (bytesRead === 0) break;
        chunks.push(buffer.subarray(0, bytesRead));
        total += bytesRead;
      }
      answer(socket, { size: total });
      socket.end(Buffer.concat(chunks));
      return;
    }
    answer(socket, { size: stats.size });
    await pipeline(handle.createReadStream({ start: 0, end: stats.size - 1, highWaterMark: CHUNK, autoClose: false }), socket);
  } finally {
    await handle.close();
  }
}

/** Writes the body to a file (created, or truncated), then answers `{path, size, mode}`. */
export async function writeFile(request: { path: string; mode?: number; mkdirParents?: boolean }, reader: RequestReader, socket: Socket): Promise<void> {
  const handle = await openForWrite(request);
  try {
    regularFile(await handle.stat(), request.path, 'write');
    if (request.mode !== undefined) await handle.chmod(request.mode);
    await pipeline(reader.body, handle.createWriteStream({ highWaterMark: CHUNK, autoClose: false }));
    const stats = await handle.stat();
    answer(socket, { path: request.path, size: stats.size, mode: octal(stats.mode) });
    socket.end();
  } finally {
    await handle.close();
  }
}

/**
 * Opens `path` for writing. A missing parent is made with `mkdirParents`; without it, only when the
 * parent's own parent exists (one level: how the SDK's mkdir without `recursive` makes a directory).
 */
async function openForWrite(request: { path: string; mode?: number; mkdirParents?: boolean }): Promise<FileHandle> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NONBLOCK;
  try {
    return await open(request.path, flags, 0o666);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // With mkdirParents a file in the way fails as `mkdir -p` does (EEXIST), not as open does (ENOTDIR).
    if (code !== 'ENOENT' && !(code === 'ENOTDIR' && request.mkdirParents)) throw error;
    const parent = dirname(request.path);
    const dirMode = directoryMode(request.mode);
    if (request.mkdirParents) await makeDirs(parent, dirMode);
    else if ((await stat(dirname(parent)).catch(() => undefined))?.isDirectory() && !(await lstat(parent).catch(() => undefined))) {
      await mkdir(parent);
      await chmod(parent, dirMode);
    } else throw error;
    return open(request.path, flags, 0o666);
  }
}

/** The mode of directories a write makes: 0755, or the file's mode with x wherever it has r. */
function directoryMode(mode: number | undefined): number {
  return mode === undefined ? 0o755 : (mode & 0o777) | ((mode & 0o444) >> 2);
}

/** `mkdir -p` that gives every directory it makes exactly `mode` (no umask). */
async function makeDirs(dir: string, mode: number): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode });
  if (first === undefined) return;
  for (let made = dir; ; made = dirname(made)) {
    await chmod(made, mode);
    if (made === first || made === '/') break;
  }
}

function regularFile(stats: Stats, path: string, syscall: string): void {
  if (stats.isDirectory()) throw errno('EISDIR', `illegal operation on a directory, ${syscall}`, path);
  if (!stats.isFile()) throw errno('EINVAL', `not a regular file, ${syscall}`, path);
}

/**
 * Lists a path: a directory's entries (all below it with `recursive`), a file itself; `pattern`
 * keeps entries whose name (or, for a pattern with '/', relative path) matches the glob.
 * Answers `{path}`, then one entry per line.
 */
export async function listPath(request: { path: string; recursive?: boolean; pattern?: string }, socket: Socket): Promise<void> {
  const top = await lstat(request.path);
  // A symlink to a directory lists the directory, as ls does.
  const followed = top.isSymbolicLink() ? await stat(request.path).catch(() => top) : top;
  const lines = new LineWriter(socket);
  const keep = (name: string): boolean => {
    if (request.pattern === undefined) return true;
    return matchesGlob(request.pattern.includes('/') ? name : basename(name), request.pattern);
  };
  if (!followed.isDirectory()) {
    answer(socket, { path: request.path });
    if (keep(basename(request.path))) await lines.write(entryOf(request.path, basename(request.path), top));
    return lines.end();
  }
  // Unreadable directories fail here, before the answer; deeper ones are skipped.
  await (await open(request.path, constants.O_RDONLY | constants.O_DIRECTORY)).close();
  answer(socket, { path: request.path });
  await walk(request.path, async (path, relative, stats) => {
    if (keep(relative)) await lines.write(entryOf(path, relative, stats));
  }, request.recursive === true);
  lines.end();
}

/** Writes JSON lines in batches, waiting while the connection is behind. */
export class LineWriter {
  readonly #socket: Socket;
  #batch = '';

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  async write(value: unknown): Promise<void> {
    this.#batch += `${JSON.stringify(value)}\n`;
    if (this.#batch.length < 64 * 1024) return;
    const ok = this.#socket.write(this.#batch);
    this.#batch = '';
    if (!ok) await new Promise<void>((resolve) => {
      this.#socket.once('drain', resolve);
      this.#socket.once('close', resolve);
    });
  }

  end(): void {
    this.#socket.end(this.#batch);
  }
}
