/**
 * The file agent's watch: inotify (through fs.watch) on paths inside the sprite, reported as the
 * SDK's events, one JSON line each: `{path, event, size?, isDir?}` or `{error}`. fs.watch only says
 * "rename" or "change", so the kind is worked out from the file: a "rename" of a path that exists is
 * a create, of one that is gone a remove, or a rename when something appeared in the same batch
 * (a move gives both in one inotify read); a "change" whose ctime is newer than its mtime is a chmod,
 * otherwise a write. Writes to one file are reported at most every 100 ms.
 */
import { watch, type FSWatcher } from 'node:fs';
import { lstat } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { errno } from './files.ts';
import { answer } from './ops.ts';

const WRITE_EVERY_MS = 100;
// Events are dropped (and the drop reported) while this much waits to go out.
const BACKLOG = 1024 * 1024;

/** Watches `paths` until the connection closes: answers `{paths}`, then events. */
export async function watchPaths(request: { paths: string[]; recursive?: boolean }, socket: Socket): Promise<void> {
  const watchers: FSWatcher[] = [];
  const close = (): void => {
    for (const watcher of watchers) watcher.close();
  };
  socket.once('close', close);
  const events = new EventBatch(socket);
  try {
    for (const path of request.paths) {
      const stats = await lstat(path);
      const recursive = request.recursive === true && stats.isDirectory();
      // Watching all of / would walk /proc and every file: refused, watch directories below it instead.
      if (recursive && path === '/') throw errno('EINVAL', 'cannot watch / recursively', path);
      const watcher = watch(path, { recursive, persistent: true });
      // A watched file names itself; a directory names the entry, relative to it.
      watcher.on('change', (type, name) => events.add(type, name && stats.isDirectory() ? join(path, name.toString()) : path));
      watcher.on('error', (error) => events.send({ error: `watching ${path}: ${error.message}` }));
      watchers.push(watcher);
    }
  } catch (error) {
    close();
    throw error;
  }
  answer(socket, { paths: request.paths });
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
}

/** Collects one tick's raw events, works out their kinds, and sends them. */
class EventBatch {
  readonly #socket: Socket;
  #raw: Array<{ type: string; path: string }> = [];
  readonly #lastWrite = new Map<string, { again: boolean }>();
  #dropped = 0;

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  add(type: string, path: string): void {
    if (this.#raw.length === 0) setImmediate(() => void this.#flush());
    this.#raw.push({ type, path });
  }

  send(line: object): void {
    if (this.#socket.destroyed) return;
    if (this.#socket.writableLength > BACKLOG) {
      this.#dropped += 1;
      return;
    }
    if (this.#dropped > 0) {
      this.#socket.write(`${JSON.stringify({ error: `${this.#dropped} events dropped: the client reads too slowly` })}\n`);
      this.#dropped = 0;
    }
    this.#socket.write(`${JSON.stringify(line)}\n`);
  }

  async #flush(): Promise<void> {
    const raw = this.#raw;
    this.#raw = [];
    const seen = new Map<string, Awaited<ReturnType<typeof lstat>> | undefined>();
    for (const { path } of raw) if (!seen.has(path)) seen.set(path, await lstat(path).catch(() => undefined));
    const appeared = raw.some(({ type, path }) => type === 'rename' && seen.get(path));
    const done = new Set<string>();
    for (const { type, path } of raw) {
      const stats = seen.get(path);
      if (type === 'rename') {
        if (done.has(path)) continue;
        done.add(path);
        if (!stats) this.send({ path, event: appeared ? 'rename' : 'remove' });
        else this.send({ path, event: 'create', size: stats.size, isDir: stats.isDirectory() });
      } else if (stats && !done.has(path)) {
        // A rename or create in the same batch already told of this path.
        if (stats.ctimeMs > stats.mtimeMs) this.send({ path, event: 'chmod', size: stats.size, isDir: stats.isDirectory() });
        else this.#write(path);
      }
    }
  }

  /** Reports a write now, or once the current 100 ms window of this file's writes ends. */
  #write(path: string): void {
    const last = this.#lastWrite.get(path);
    if (last) {
      last.again = true;
      return;
    }
    const report = async (): Promise<void> => {
      const stats = await lstat(path).catch(() => undefined);
      if (stats) this.send({ path, event: 'write', size: stats.size, isDir: stats.isDirectory() });
    };
    const window = { again: false };
    this.#lastWrite.set(path, window);
    void report();
    const timer = setInterval(() => {
      if (!window.again || this.#socket.destroyed) {
        clearInterval(timer);
        this.#lastWrite.delete(path);
        return;
      }
      window.again = false;
      void report();
    }, WRITE_EVERY_MS);
  }
}
