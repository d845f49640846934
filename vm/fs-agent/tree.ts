/**
 * The file agent's operations on paths and trees: delete, rename, copy, chmod, chown. Each answers
 * one result. Below its top, a tree operation never follows a symlink.
 */
import type { Stats } from 'node:fs';
import { chmod, chown, copyFile, lchown, lstat, lutimes, mkdir, readFile, readlink, rename, rmdir, stat, symlink, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { errno, octal, walk } from './files.ts';

/** Deletes a file, an empty directory, or with `recursive` a whole tree: `{deleted, count}`. */
export async function deletePath(request: { path: string; recursive?: boolean }): Promise<object> {
  if (request.path === '/') throw errno('EPERM', 'refusing to delete the root directory', '/');
  const top = await lstat(request.path);
  let count = 1;
  if (!top.isDirectory()) await unlink(request.path);
  else if (!request.recursive) await rmdir(request.path);
  else count = await removeTree(request.path);
  return { deleted: [request.path], count };
}

/** Removes a directory and everything below it (symlinks are removed, not followed); the number of files removed. */
async function removeTree(dir: string): Promise<number> {
  let count = 0;
  const dirs: string[] = [dir];
  await walk(dir, async (path, _relative, stats) => {
    if (stats.isDirectory()) dirs.push(path);
    else {
      await unlink(path);
      count += 1;
    }
  });
  // Deepest first: a walk lists parents before their children.
  for (const path of dirs.reverse()) {
    await rmdir(path);
    count += 1;
  }
  return count;
}

/** Renames or moves: `{source, dest}`. */
export async function renamePath(request: { source: string; dest: string }): Promise<object> {
  await rename(request.source, request.dest);
  return { source: request.source, dest: request.dest };
}

/**
 * Copies a file, or with `recursive` a tree, to exactly `dest` (files there are replaced, directories
 * merged, symlinks copied as symlinks): `{source, dest, count}`. `preserveAttrs` keeps owner, mode and times.
 */
export async function copyPath(request: { source: string; dest: string; recursive?: boolean; preserveAttrs?: boolean }): Promise<object> {
  // As cp does: a symlink named as the source is followed, unless the copy is recursive.
  const top = request.recursive ? await lstat(request.source) : await stat(request.source);
  if (top.isDirectory() && !request.recursive) throw errno('EISDIR', 'source is a directory (copy it with recursive)', request.source);
  const keep = request.preserveAttrs === true;
  let count = await copyOne(request.source, request.dest, top, keep);
  if (top.isDirectory()) {
    // The copy must not copy itself when dest lies inside source (through a symlink, say).
    const made = await stat(request.dest);
    const pending: Array<{ dest: string; stats: Stats }> = [];
    await walk(request.source, async (path, relative, stats) => {
      if (stats.isDirectory() && stats.dev === made.dev && stats.ino === made.ino) return false;
      const dest = join(request.dest, relative);
      count += await copyOne(path, dest, stats, keep);
      if (keep && stats.isDirectory()) pending.push({ dest, stats });
      return true;
    });
    // Directory times last: copying into a directory changes its mtime.
    if (keep) for (const { dest, stats } of [...pending.reverse(), { dest: request.dest, stats: top }]) await utimes(dest, stats.atime, stats.mtime);
  }
  return { source: request.source, dest: request.dest, count };
}

/** Copies one file, directory (not its contents) or symlink; other kinds are skipped. Returns how many it copied. */
async function copyOne(source: string, dest: string, stats: Stats, keep: boolean): Promise<number> {
  if (stats.isDirectory()) {
    await mkdir(dest, { mode: stats.mode & 0o7777 }).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST' || !(await lstat(dest)).isDirectory()) throw error;
    });
  } else if (stats.isSymbolicLink()) {
    const target = await readlink(source);
    await unlink(dest).catch(() => undefined);
    await symlink(target, dest);
  } else if (stats.isFile()) {
    await copyFile(source, dest);
  } else {
    return 0;
  }
  if (keep) {
    await lchown(dest, stats.uid, stats.gid).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPERM') throw error;
    });
    if (!stats.isSymbolicLink()) await chmod(dest, stats.mode & 0o7777);
    if (stats.isSymbolicLink()) await lutimes(dest, stats.atime, stats.mtime);
    else if (stats.isFile()) await utimes(dest, stats.atime, stats.mtime);
  }
  return 1;
}

/** Sets permission bits of a path (followed if a symlink), with `recursive` of everything below it except symlinks: `{path, mode, count}`. */
export async function chmodPath(request: { path: string; mode: number; recursive?: boolean }): Promise<object> {
  await chmod(request.path, request.mode);
  let count = 1;
  if (request.recursive && (await stat(request.path)).isDirectory()) {
    await walk(request.path, async (path, _relative, stats) => {
      if (stats.isSymbolicLink()) return;
      await chmod(path, request.mode);
      count += 1;
    });
  }
  return { path: request.path, mode: octal(request.mode), count };
}

/**
 * Sets the owner and/or group of a path, by number or by a name from the sprite's own /etc/passwd and
 * /etc/group; with `recursive`, of everything below it too (symlinks themselves): `{path, uid, gid, count}`.
 */
export async function chownPath(request: { path: string; uid?: number | string; gid?: number | string; recursive?: boolean }): Promise<object> {
  const uid = request.uid === undefined ? -1 : await idOf(request.uid, '/etc/passwd', request.path);
  const gid = request.gid === undefined ? -1 : await idOf(request.gid, '/etc/group', request.path);
  await chown(request.path, uid, gid);
  let count = 1;
  if (request.recursive && (await stat(request.path)).isDirectory()) {
    await walk(request.path, async (path) => {
      await lchown(path, uid, gid);
      count += 1;
    });
  }
  return { path: request.path, uid: uid < 0 ? undefined : uid, gid: gid < 0 ? undefined : gid, count };
}

/** A numeric id, or the id of a name in `table` (/etc/passwd or /etc/group: name:x:id:...). */
async function idOf(value: number | string, table: string, path: string): Promise<number> {
  if (typeof value === 'number') return value;
  if (/^\d+$/.test(value)) return Number(value);
  const text = await readFile(table, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':');
    if (name === value && id !== undefined && /^\d+$/.test(id)) return Number(id);
  }
  throw errno('EINVAL', `no ${table === '/etc/passwd' ? 'user' : 'group'} named ${value}`, path);
}
