/**
 * What the file agent's operations share: errors with errno codes, list entries, and the walk over
 * a tree that never follows a symlink below its top.
 */
import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** An entry of a list answer (the SDK's FsEntry). */
export interface Entry {
  name: string;
  path: string;
  type: string;
  size: number;
  mode: string;
  modTime: string;
  isDir: boolean;
}

/** An error the way node:fs makes them: `code` an errno name, `path` the file. */
export function errno(code: string, message: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${message}, '${path}'`), { code, path });
}

/** Permission bits as the API shows them: four octal digits. */
export function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** What kind of file `stats` describes, as list entries name it. */
export function typeOf(stats: Stats | Dirent): string {
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFile()) return 'file';
  if (stats.isFIFO()) return 'fifo';
  if (stats.isSocket()) return 'socket';
  if (stats.isCharacterDevice()) return 'char';
  return 'block';
}

/** The list entry of `path`, shown as `name`. */
export function entryOf(path: string, name: string, stats: Stats): Entry {
  return {
    name, path, type: typeOf(stats), size: stats.size, mode: octal(stats.mode),
    modTime: stats.mtime.toISOString(), isDir: stats.isDirectory(),
  };
}

/** A directory's entries by name; what cannot be read (gone, no permission) is empty. */
export async function children(dir: string): Promise<Dirent[]> {
  const found = await readdir(dir, { withFileTypes: true }).catch(() => [] as Dirent[]);
  return found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** What `walk` calls per file: its path, its path relative to the walk's top, its lstat; `false` skips a directory's contents. */
export type Visit = (path: string, relative: string, stats: Stats) => Promise<void | boolean> | void | boolean;

/**
 * Calls `visit` for every file under `dir` (not `dir` itself; only its own entries unless `deep`),
 * parents before children, by name. Symlinks are visited, never followed; what vanishes during the
 * walk is skipped.
 */
export async function walk(dir: string, visit: Visit, deep = true, relative = ''): Promise<void> {
  for (const child of await children(dir)) {
    const path = join(dir, child.name);
    const rel = relative === '' ? child.name : `${relative}/${child.name}`;
    const stats = await lstat(path).catch(() => undefined);
    if (!stats) continue;
    const enter = await visit(path, rel, stats);
    if (deep && enter !== false && stats.isDirectory()) await walk(path, visit, deep, rel);
  }
}
