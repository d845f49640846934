import { chmod, chown, copyFile, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exists, runCommand } from './command.ts';

/** Options for building a base image. */
export interface ImageInit {
  /** Directory that holds built images. */
  dir: string;
  /** Host uid/gid that the sprite's root maps to; image files are owned by it. */
  rootId: number;
  /** Virtual size of the disk in bytes (sparse). @default 100 GiB */
  sizeBytes?: number;
}

/** Default virtual disk size: 100 GiB, sparse, so only written blocks take space. */
export const DEFAULT_DISK_BYTES = 100 * 1024 ** 3;

const BUSYBOX = '/bin/busybox';

/**
 * Builds the busybox base image once: an ext4 file whose root holds a static busybox with
 * its applets, the usual top-level directories, and `/.sprite` as the platform's mount point.
 * Returns the image path; an existing image is reused.
 */
export async function ensureBusyboxImage(init: ImageInit): Promise<string> {
  const image = join(init.dir, 'busybox.ext4');
  if (await exists(image)) return image;
  await mkdir(init.dir, { recursive: true });
  const staging = join(init.dir, `busybox.${process.pid}.root`);
  const partial = join(init.dir, `busybox.${process.pid}.partial`);
  await rm(staging, { recursive: true, force: true });
  try {
    await populateBusyboxRoot(staging);
    await chownTree(staging, init.rootId);
    await writeFile(partial, '');
    await runCommand('truncate', ['-s', String(init.sizeBytes ?? DEFAULT_DISK_BYTES), partial]);
    // Lazy init keeps a fresh 100 GiB filesystem at a few MiB of real blocks.
    await runCommand('mkfs.ext4', ['-q', '-F', '-L', 'sprite', '-E', `lazy_itable_init=1,lazy_journal_init=1,root_owner=${init.rootId}:${init.rootId}`, '-d', staging, partial]);
    await rename(partial, image);
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(partial, { force: true });
  }
  return image;
}

async function populateBusyboxRoot(root: string): Promise<void> {
  for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'root', 'home', 'var/log', 'run', '.sprite']) {
    await mkdir(join(root, dir), { recursive: true });
  }
  await mkdir(join(root, 'tmp'), { recursive: true });
  await chmod(join(root, 'tmp'), 0o1777);
  await copyFile(BUSYBOX, join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  const applets = (await runCommand(BUSYBOX, ['--list'])).split('\n').filter((name) => name && name !== 'busybox');
  for (const applet of applets) await symlink('busybox', join(root, 'bin', applet));
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(join(root, 'etc/profile'), 'export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin:/.sprite/bin\nexport PS1="\\h:\\w# "\n');
  await writeFile(join(root, 'etc/hosts'), '127.0.0.1 localhost\n::1 localhost\n');
}

async function chownTree(root: string, id: number): Promise<void> {
  await runCommand('chown', ['-R', '-h', `${id}:${id}`, root]);
  await chown(root, id, id);
}
