import type { RowOf } from '../../gossip/index.ts';
import type { RecordStore } from './store.ts';
import { imagesTable } from './tables.ts';

/** An image as listings show it. */
export interface ImageInfo {
  name: string;
  /** The image volume in the object store. */
  volume: string;
  source: string;
  bytes: number;
  peer: string;
  created: string;
}

/** Base images as rows of the replicated `images` table, written by the peer that built each. */
export class ImageRecords {
  readonly #mesh: RecordStore;

  constructor(mesh: RecordStore) {
    this.#mesh = mesh;
  }

  /** Every image, by name. */
  list(): ImageInfo[] {
    return this.#mesh.store.all(imagesTable).map(toInfo).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** One image, or undefined. */
  get(name: string): ImageInfo | undefined {
    const row = this.#mesh.store.get(imagesTable, { name });
    return row && toInfo(row);
  }

  /** Publishes an image unless one of that name exists; returns whether it did. */
  insert(info: ImageInfo): boolean {
    let published = false;
    this.#mesh.write((tx) => {
      if (tx.get(imagesTable, { name: info.name })) return;
      tx.upsert(imagesTable, { ...info });
      published = true;
    });
    return published;
  }

  /** Removes an image's row; a missing name is no change. */
  delete(name: string): void {
    this.#mesh.write((tx) => tx.delete(imagesTable, { name }));
  }

  /** The volumes some image names. */
  volumes(): Set<string> {
    return new Set(this.#mesh.store.all(imagesTable).map((row) => row.volume));
  }
}

function toInfo(row: RowOf<typeof imagesTable>): ImageInfo {
  return { name: row.name, volume: row.volume, source: row.source, bytes: row.bytes, peer: row.peer, created: row.created };
}
