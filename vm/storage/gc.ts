import { listStoredVolumes, loadVolume, replayMaps } from './device/journal.ts';
import { objectIdOfKey } from './device/objects.ts';
import type { Logger } from '../logger.ts';
import type { ObjectInfo, ObjectStore } from './store/store.ts';

/** Options of one garbage collection pass. */
export interface GcInit {
  store: ObjectStore;
  logger: Logger;
  /** Objects younger than this are never deleted. @default 3600000 (1 hour) */
  graceMs?: number;
  /** The current time, for tests. @default Date.now() */
  now?: number;
  /** Count what would be deleted without deleting. @default false */
  dryRun?: boolean;
}

/** Documented defaults of {@link GcInit}. */
export const GC_DEFAULTS = { graceMs: 3_600_000 } as const;

/** What one pass found and did. */
export interface GcResult {
  volumes: number;
  objects: number;
  live: number;
  deleted: number;
  deletedBytes: number;
}

/**
 * Deletes data objects that no version of any volume references and that are older than the
 * grace period. Order matters: objects are listed first and references read second, so an
 * object committed after the listing is either not a candidate or already referenced; an object
 * uploaded but not yet committed is protected by the grace period, which must exceed the
 * longest upload-to-commit gap (seconds, against a default of an hour). Any error reading a
 * volume's metadata aborts the pass before anything is deleted.
 */
export async function collectGarbage(init: GcInit): Promise<GcResult> {
  const graceMs = init.graceMs ?? GC_DEFAULTS.graceMs;
  const now = init.now ?? Date.now();
  const objects: ObjectInfo[] = [];
  for await (const info of init.store.list('objects/')) objects.push(info);
  const live = new Set<string>();
  const volumes = await listStoredVolumes(init.store);
  for (const volume of volumes) {
    // The exact maps after the last record: the head and every checkpoint.
    const { head, versions } = replayMaps(await loadVolume(init.store, volume));
    for (const object of head.values()) live.add(object);
    for (const map of versions.values()) for (const object of map.values()) live.add(object);
  }
  let deleted = 0;
  let deletedBytes = 0;
  for (const info of objects) {
    const id = objectIdOfKey(info.key);
    if (!id || live.has(id) || now - info.modified < graceMs) continue;
    if (!init.dryRun) await init.store.delete(info.key);
    deleted++;
    deletedBytes += info.size;
  }
  const result = { volumes: volumes.length, objects: objects.length, live: live.size, deleted, deletedBytes };
  init.logger.info('garbage collection done', { ...result, graceMs, dryRun: init.dryRun ?? false });
  return result;
}
