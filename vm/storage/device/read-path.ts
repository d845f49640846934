import { describe } from '../errors.ts';
import type { Logger } from '../../logger.ts';
import type { ObjectStore } from '../store/store.ts';
import type { ObjectCache } from './cache.ts';
import type { DeviceOptions } from './device.ts';
import type { DirtyUnits } from './dirty-units.ts';
import { objectKey, verifyObject } from './objects.ts';

/** What the read path is made of. */
export interface ReadPathInit {
  volume: string;
  size: number;
  unitSize: number;
  /** The committed head map (unit -> object id), kept current by write-back. */
  head: ReadonlyMap<number, string>;
  store: ObjectStore;
  cache: ObjectCache;
  logger: Logger;
  /** The dirty units, read before the head map: a dirty unit's file is its current version. */
  dirty: Pick<DirtyUnits, 'has' | 'read'>;
  options: Pick<DeviceOptions, 'readAheadUnits'>;
}

/** Counters of the read path. */
export interface ReadPathStats {
  fetched: number;
  fetchedBytes: number;
  readAheads: number;
}

/**
 * Reads of a device's units: a dirty unit from its local file, a clean one through the object
 * cache, fetching (and verifying) its object on a miss; concurrent fetches of one object share
 * the request. A sequential reader gets the next units fetched ahead.
 */
export class ReadPath {
  readonly #init: ReadPathInit;
  readonly #fetches = new Map<string, Promise<Buffer>>();
  readonly #stats: ReadPathStats = { fetched: 0, fetchedBytes: 0, readAheads: 0 };
  #lastReadUnit = -2;
  #streak = 0;
  #prefetching = 0;

  constructor(init: ReadPathInit) {
    this.#init = init;
  }

  /** Counters. */
  stats(): ReadPathStats {
    return { ...this.#stats };
  }

  /** Fills `out` from `at` of `unit`: its dirty file, its object, or zeros when it has neither. */
  async readUnit(unit: number, at: number, out: Buffer): Promise<void> {
    if (this.#init.dirty.has(unit)) {
      if (await this.#init.dirty.read(unit, at, out)) return;
    }
    const object = this.#init.head.get(unit);
    if (!object) {
      out.fill(0);
      return;
    }
    if (await this.#init.cache.read(object, at, out)) return;
    const data = await this.fetch(object, unit);
    data.copy(out, 0, at, at + out.length);
  }

  /** Fetches, verifies and caches an object; concurrent fetches of one object share the request. */
  fetch(object: string, unit: number): Promise<Buffer> {
    let fetching = this.#fetches.get(object);
    if (!fetching) {
      fetching = (async () => {
        const key = objectKey(object);
        try {
          const { body } = await this.#init.store.get(key);
          verifyObject(object, body, this.#init.unitSize);
          this.#stats.fetched++;
          this.#stats.fetchedBytes += body.length;
          await this.#init.cache.insert(object, body).catch((error) => this.#init.logger.warn('cache insert failed', { object, error: describe(error) }));
          return body;
        } catch (error) {
          // The one log line that names the object: the read fails with EIO, never wrong data.
          this.#init.logger.error('object read failed', {
            volume: this.#init.volume, unit, object, key, code: (error as { code?: string }).code, error: describe(error),
          });
          throw error;
        }
      })().finally(() => this.#fetches.delete(object));
      this.#fetches.set(object, fetching);
    }
    return fetching;
  }

  /** Notes a read of units `first`..`last`; after a sequential streak, fetches the next units ahead. */
  noteRead(first: number, last: number): void {
    // Reads of the same or the next unit count as sequential; a streak triggers read-ahead.
    this.#streak = first === this.#lastReadUnit || first === this.#lastReadUnit + 1 ? this.#streak + 1 : 0;
    this.#lastReadUnit = last;
    const ahead = this.#init.options.readAheadUnits;
    if (this.#streak < 4 || ahead === 0) return;
    const units = this.#init.size / this.#init.unitSize;
    for (let unit = last + 1; unit <= last + ahead && unit < units; unit++) {
      if (this.#prefetching >= ahead) break;
      if (this.#init.dirty.has(unit)) continue;
      const object = this.#init.head.get(unit);
      if (!object || this.#init.cache.has(object) || this.#fetches.has(object)) continue;
      this.#prefetching++;
      this.#stats.readAheads++;
      this.fetch(object, unit).catch(() => undefined).finally(() => { this.#prefetching--; });
    }
  }
}
