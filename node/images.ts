import { randomBytes } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { DEBIAN_SUITE, apparentSize, buildImageFile, checkTarball, findDebootstrap, type Progress, type RootSource, type VolumeStore } from '../vm/index.ts';
import { PeerError } from './errors.ts';
import type { Logger } from '../vm/index.ts';
import { SPRITE_NAME, TENANT_NAME_RULE } from './names.ts';
import type { ImageInfo, ImageRecords } from './records/index.ts';

/** Image names follow the sprite name rule (they name a volume and appear in URLs). */
const IMAGE_NAME_RULE = `image ${TENANT_NAME_RULE}`;

/** What the image manager needs from the peer. */
export interface ImageManagerInit {
  /** The replicated list of images. */
  records: ImageRecords;
  volumes: Pick<VolumeStore, 'importImage' | 'remove' | 'idleVolumes'>;
  /** Scratch directory for staging roots and image files. */
  dir: string;
  /** Host id the sprites' root maps to. */
  rootId: number;
  peerId: string;
  /** Cap on the bytes of files (and of a tarball) an image may hold. */
  maxBytes: number;
  logger: Logger;
}

/** Every image volume's id starts with this. */
const IMAGE_VOLUME_PREFIX = 'img-';

/**
 * How long an image volume nobody names must have gone unwritten before a sweep removes it. Long,
 * because a peer cut off from the mesh may not have heard of an image built meanwhile.
 */
const IMAGE_SWEEP_IDLE_MS = 24 * 3600_000;

/**
 * A new volume id for image `name`. Each build gets its own, so a peer that cloned an earlier
 * image of the same name never reads its cached metadata for the new one.
 */
function newImageVolume(name: string): string {
  return `${IMAGE_VOLUME_PREFIX}${name}-${randomBytes(4).toString('hex')}`;
}

/** Throws ERR_BAD_NAME unless `name` is a valid image name. */
function checkImageName(name: string): void {
  if (!SPRITE_NAME.test(name)) throw new PeerError('ERR_BAD_NAME', IMAGE_NAME_RULE);
}

/**
 * Builds base images into the shared object store and keeps the replicated list of them, so a
 * sprite on any peer sharing the store can be created from one (a metadata-only clone).
 */
export class ImageManager {
  readonly #init: ImageManagerInit;
  readonly #building = new Set<string>();

  constructor(init: ImageManagerInit) {
    this.#init = init;
  }

  /** Every image, by name. */
  list(): ImageInfo[] {
    return this.#init.records.list();
  }

  /** One image; throws ERR_IMAGE_NOT_FOUND. */
  get(name: string): ImageInfo {
    const info = SPRITE_NAME.test(name) ? this.#init.records.get(name) : undefined;
    if (!info) throw new PeerError('ERR_IMAGE_NOT_FOUND', `no image named ${name} (see sprite image list)`);
    return info;
  }

  /**
   * Checks everything that can be checked before a build starts (name, source, tools), so the
   * caller can still answer with a plain error status before streaming progress.
   */
  async check(name: string, source: RootSource): Promise<void> {
    checkImageName(name);
    this.#unused(name);
    const { maxBytes } = this.#init;
    switch (source.kind) {
      case 'dir': {
        requireAbsolute(source.path);
        const info = await stat(source.path).catch(() => undefined);
        if (!info?.isDirectory()) throw new PeerError('ERR_IMAGE_SOURCE', `${source.path} is not a directory on peer ${this.#init.peerId}`);
        const bytes = await apparentSize(source.path);
        if (bytes > maxBytes) throw new PeerError('ERR_IMAGE_TOO_LARGE', `${source.path} holds ${bytes} bytes, over the image limit of ${maxBytes}`);
        break;
      }
      case 'tar': {
        requireAbsolute(source.path);
        const info = await stat(source.path).catch(() => undefined);
        if (!info?.isFile()) throw new PeerError('ERR_IMAGE_SOURCE', `${source.path} is not a file on peer ${this.#init.peerId}`);
        if (info.size > maxBytes) throw new PeerError('ERR_IMAGE_TOO_LARGE', `${source.path} is ${info.size} bytes, over the image limit of ${maxBytes}`);
        await checkTarball(source.path);
        break;
      }
      case 'debian':
        if (!DEBIAN_SUITE.test(source.suite)) throw new PeerError('ERR_BAD_REQUEST', `suite ${source.suite} is not a Debian suite name`);
        if (!/^https?:\/\/[^\s]+$/.test(source.mirror)) throw new PeerError('ERR_BAD_REQUEST', 'mirror must be an http(s) URL');
        if (!(await findDebootstrap())) throw new PeerError('ERR_IMAGE_SOURCE', `debootstrap is not installed on peer ${this.#init.peerId} (install the Debian package debootstrap)`);
        break;
      case 'busybox':
        break;
    }
  }

  /**
   * Builds image `name`: stages its root, writes ext4, imports it as a new volume into the object
   * store and publishes its row. A build that finds the name taken when it is done drops its
   * volume. Two peers finishing one name at the same moment both publish; gossip settles on one
   * row (last writer wins) and the other volume is left unreferenced in the store. The caller
   * runs {@link check} first (it walks the source, which can take a while).
   */
  async build(name: string, source: RootSource, progress: Progress = () => {}): Promise<ImageInfo> {
    checkImageName(name);
    this.#unused(name);
    if (this.#building.has(name)) throw new PeerError('ERR_IMAGE_EXISTS', `image ${name} is being built`);
    this.#building.add(name);
    const started = Date.now();
    let file: string | undefined;
    try {
      file = await buildImageFile({ dir: this.#init.dir, rootId: this.#init.rootId, name, source, maxBytes: this.#init.maxBytes, progress });
      progress('importing into the object store');
      const bytes = await fileBytes(file);
      const volume = newImageVolume(name);
      await this.#init.volumes.importImage(volume, file);
      const info: ImageInfo = { name, volume, source: describeSource(source), bytes, peer: this.#init.peerId, created: new Date().toISOString() };
      // Another peer may have published the name meanwhile: the first row stays, this volume goes.
      if (!this.#init.records.insert(info)) {
        await this.#init.volumes.remove(volume);
        throw new PeerError('ERR_IMAGE_EXISTS', `an image named ${name} was built meanwhile`);
      }
      this.#init.logger.info('image built', { image: name, source: info.source, bytes, ms: Date.now() - started });
      return info;
    } finally {
      this.#building.delete(name);
      if (file) await rm(file, { force: true });
    }
  }

  /**
   * Deletes image `name`: its row and its volume. Sprites created from it keep working: their
   * disks reference the image's objects, which GC keeps while any map does.
   */
  async delete(name: string): Promise<void> {
    checkImageName(name);
    const image = this.#init.records.get(name);
    if (!image) throw new PeerError('ERR_IMAGE_NOT_FOUND', `no image named ${name}`);
    // The row goes first: no new sprite starts cloning a volume about to disappear.
    this.#init.records.delete(name);
    await this.#init.volumes.remove(image.volume);
  }

  /**
   * Removes image volumes that no image names and nothing wrote to for a day: left by a peer
   * that died importing, or by a delete whose removal failed. Returns the removed ids.
   */
  async sweep(): Promise<string[]> {
    return sweepImageVolumes(this.#init.volumes, this.#init.records.volumes(), IMAGE_SWEEP_IDLE_MS, this.#init.logger);
  }

  #unused(name: string): void {
    if (this.#init.records.get(name)) throw new PeerError('ERR_IMAGE_EXISTS', `an image named ${name} exists`);
  }
}

/**
 * Removes the idle image volumes not in `named`. A volume another peer still writes is not idle,
 * and one it holds fails to remove (its lease): that one is logged and left for the next sweep.
 */
export async function sweepImageVolumes(
  volumes: Pick<VolumeStore, 'remove' | 'idleVolumes'>, named: ReadonlySet<string>, idleMs: number, logger: Logger,
): Promise<string[]> {
  const removed: string[] = [];
  for (const volume of await volumes.idleVolumes(IMAGE_VOLUME_PREFIX, idleMs)) {
    if (named.has(volume)) continue;
    try {
      await volumes.remove(volume);
      removed.push(volume);
      logger.info('removed an image volume no image names', { volume });
    } catch (error) {
      logger.warn('could not remove an image volume no image names', { volume, error: (error as Error).message });
    }
  }
  return removed;
}

/** A short description of a source for listings. */
function describeSource(source: RootSource): string {
  switch (source.kind) {
    case 'busybox': return 'busybox';
    case 'dir': return `dir ${source.path}`;
    case 'tar': return `tar ${source.path}`;
    case 'debian': return `debian ${source.suite} ${source.mirror}`;
  }
}

function requireAbsolute(path: string): void {
  if (!isAbsolute(path)) throw new PeerError('ERR_BAD_REQUEST', `path ${path} must be absolute (it is read on the peer's host)`);
}

/** Blocks the image file really uses (it is sparse). */
async function fileBytes(file: string): Promise<number> {
  return (await stat(file)).blocks * 512;
}
