import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exists, runCommand } from './command.ts';
import { VM_DEFAULTS } from './defaults.ts';
import { populateRoot, shiftOwnership, type Progress, type RootSource } from './rootfs.ts';

/** Options for building a base image. */
export interface ImageInit {
  /** Directory that holds built images. */
  dir: string;
  /** Host uid/gid that the sprite's root maps to; image files are owned by it (and ids above it). */
  rootId: number;
  /** Virtual size of the disk in bytes (sparse). @default VM_DEFAULTS.diskBytes (100 GiB) */
  sizeBytes?: number;
}

/** The base images a peer can boot its warm sprites from. */
export type BaseImage = Extract<RootSource, { kind: 'busybox' | 'debian' }>;

/**
 * Builds a base image once and returns its path (`<kind>.ext4`); an existing one is reused.
 * busybox: a static busybox with its applets and the usual top-level directories; debian:
 * debootstrap's minbase. Both have `/.sprite` as the platform's mount point.
 */
export async function ensureBaseImage(init: ImageInit & { source: BaseImage; progress?: Progress }): Promise<string> {
  const image = join(init.dir, `${init.source.kind}.ext4`);
  if (await exists(image)) return image;
  const partial = await buildImageFile({ ...init, name: init.source.kind });
  await rename(partial, image);
  return image;
}

/**
 * Builds an ext4 image file from `source` in `init.dir` and returns its path (the caller removes
 * it). Files are staged in a scratch directory, their owners shifted into the sprite's id range,
 * then written with `mkfs.ext4 -d`; lazy init keeps a 100 GiB filesystem at a few MiB of blocks.
 */
export async function buildImageFile(init: ImageInit & { name: string; source: RootSource; maxBytes?: number; progress?: Progress }): Promise<string> {
  const progress = init.progress ?? (() => {});
  await mkdir(init.dir, { recursive: true });
  const tag = `${init.name}.${process.pid}.${Date.now()}`;
  const staging = join(init.dir, `${tag}.root`);
  const partial = join(init.dir, `${tag}.ext4`);
  try {
    await populateRoot(staging, init.source, progress);
    const bytes = await shiftOwnership(staging, init.rootId, init.maxBytes ?? VM_DEFAULTS.imageMaxBytes);
    progress(`writing ext4 (${bytes} bytes of files)`);
    await writeFile(partial, '');
    await runCommand('truncate', ['-s', String(init.sizeBytes ?? VM_DEFAULTS.diskBytes), partial]);
    await runCommand('mkfs.ext4', [
      '-q', '-F', '-L', 'sprite', '-E', `lazy_itable_init=1,lazy_journal_init=1,root_owner=${init.rootId}:${init.rootId}`, '-d', staging, partial,
    ], { timeoutMs: 30 * 60_000 });
    return partial;
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
