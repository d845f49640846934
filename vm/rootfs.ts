import { chmod, copyFile, lchown, lstat, mkdir, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './command.ts';
import { debootstrap } from './debootstrap.ts';
import { VmError } from './errors.ts';

/** Where the files of a base image come from. */
export type RootSource =
  | { kind: 'busybox' }
  | { kind: 'dir'; path: string }
  | { kind: 'tar'; path: string }
  | { kind: 'debian'; suite: string; mirror: string };

/** Called with one line of progress at a time (debootstrap's messages, build steps), with the percentage done when known. */
export type Progress = (line: string, percent?: number) => void;

/** Ids inside a sprite: its user namespace maps 0..65535 onto the host from the root id. */
const ID_RANGE = 65536;
const NOBODY = 65534;
const BUSYBOX = '/bin/busybox';
/** Mount points and directories every sprite root needs, whatever the source. */
const ROOT_DIRS = ['proc', 'sys', 'dev', 'tmp', 'root', 'etc', '.sprite'];

/**
 * Fills the empty directory `root` from `source`. A directory is copied, a tarball extracted
 * (gzip, xz, bzip2 or zstd recognised by tar), debian is debootstrap's minbase. Fails with
 * ERR_IMAGE_SOURCE naming the problem when the source is unusable.
 */
export async function populateRoot(root: string, source: RootSource, progress: Progress = () => {}): Promise<void> {
  await mkdir(root, { recursive: true });
  switch (source.kind) {
    case 'busybox':
      await populateBusyboxRoot(root);
      break;
    case 'dir':
      progress(`copying ${source.path}`);
      await runCommand('cp', ['-a', '--reflink=auto', `${source.path}/.`, root], { timeoutMs: 30 * 60_000 }).catch((error: unknown) => {
        throw new VmError('ERR_IMAGE_SOURCE', `cannot copy ${source.path}: ${(error as Error).message}`, { cause: error });
      });
      break;
    case 'tar':
      progress(`extracting ${source.path}`);
      // As root tar keeps the archive's owners (numeric), which the shift below moves into the sprite's range.
      await runCommand('tar', ['-x', '-p', '--numeric-owner', '-f', source.path, '-C', root], { timeoutMs: 30 * 60_000 }).catch((error: unknown) => {
        throw new VmError('ERR_IMAGE_SOURCE', `cannot extract ${source.path}: ${(error as Error).message}`, { cause: error });
      });
      break;
    case 'debian':
      await debootstrap(root, source, progress);
      break;
  }
  for (const dir of ROOT_DIRS) await mkdir(join(root, dir), { recursive: true });
  await chmod(join(root, 'tmp'), 0o1777);
}

/**
 * Moves ownership of every file under `root` into the sprite's id range (uid u becomes rootId + u;
 * ids outside the range become nobody) and drops device nodes and sockets (a sprite gets its own
 * /dev; a node from an archive must not reach host devices). Returns the bytes of regular files,
 * failing with ERR_IMAGE_TOO_LARGE once they pass `maxBytes`.
 */
export async function shiftOwnership(root: string, rootId: number, maxBytes: number): Promise<number> {
  let bytes = 0;
  const shift = (id: number): number => rootId + (id < ID_RANGE ? id : NOBODY);
  const visit = async (path: string): Promise<void> => {
    const info = await lstat(path);
    if (info.isBlockDevice() || info.isCharacterDevice() || info.isSocket()) {
      await rm(path, { force: true });
      return;
    }
    if (info.isFile()) {
      bytes += info.size;
      if (bytes > maxBytes) throw new VmError('ERR_IMAGE_TOO_LARGE', `the image's files pass the limit of ${maxBytes} bytes`);
    }
    await lchown(path, shift(info.uid), shift(info.gid));
    // chown clears setuid/setgid bits; put them back.
    if (!info.isSymbolicLink() && (info.mode & 0o6000) !== 0) await chmod(path, info.mode & 0o7777);
    if (info.isDirectory()) for (const entry of await readdir(path)) await visit(join(path, entry));
  };
  await visit(root);
  return bytes;
}

/** Bytes of regular files under `dir`, as `du` counts them (apparent size); for checking a source before copying it. */
export async function apparentSize(dir: string): Promise<number> {
  const out = await runCommand('du', ['-s', '-b', dir], { timeoutMs: 10 * 60_000 });
  return Number(out.split(/\s/)[0]);
}

/** Checks that `file` is a tarball tar can read, without extracting it. */
export async function checkTarball(file: string): Promise<void> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) throw new VmError('ERR_IMAGE_SOURCE', `${file} is not a file`);
  await runCommand('tar', ['-t', '-f', file], { timeoutMs: 10 * 60_000 }).catch((error: unknown) => {
    throw new VmError('ERR_IMAGE_SOURCE', `${file} is not a readable tarball: ${(error as Error).message}`, { cause: error });
  });
}

/**
 * Copies the host's static busybox into `dir` with a symlink per applet, skipping names in
 * `skip`. The busybox file comes last, under its name, so its presence says the links are there.
 */
export async function linkBusybox(dir: string, skip: ReadonlySet<string> = new Set()): Promise<void> {
  for (const applet of (await runCommand(BUSYBOX, ['--list'])).split('\n')) {
    if (applet && applet !== 'busybox' && !skip.has(applet)) await symlink('busybox', join(dir, applet)).catch(ignoreExisting);
  }
  await copyFile(BUSYBOX, join(dir, 'busybox.partial'));
  await chmod(join(dir, 'busybox.partial'), 0o755);
  await rename(join(dir, 'busybox.partial'), join(dir, 'busybox'));
}

function ignoreExisting(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EEXIST') throw error;
}

/** A busybox root: the top-level directories other than ROOT_DIRS (populateRoot adds those), busybox, and /etc basics. */
async function populateBusyboxRoot(root: string): Promise<void> {
  for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'home', 'var/log', 'run']) await mkdir(join(root, dir), { recursive: true });
  await linkBusybox(join(root, 'bin'));
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(join(root, 'etc/profile'), 'export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin:/.sprite/bin\nexport PS1="\\h:\\w# "\n');
  await writeFile(join(root, 'etc/hosts'), '127.0.0.1 localhost\n::1 localhost\n');
}
