import { PeerError } from '../errors.ts';
import type { RecordStore } from './store.ts';
import { spriteDocsTable } from './tables.ts';

/** What a sprite document is. */
export type DocKind = 'policy/network' | 'policy/privileges' | 'policy/resources' | 'lineage' | 'usage';

/** The store caps a gossiped text value at 64 KiB; a document stays under it. */
const MAX_DOC_BYTES = 60 * 1024;
const KINDS: readonly DocKind[] = ['policy/network', 'policy/privileges', 'policy/resources', 'lineage', 'usage'];

/**
 * Per-sprite JSON documents in the replicated `sprite_docs` table, keyed by sprite id. A read
 * checks the document with the caller's parser: a row that came through gossip malformed (or
 * from a peer with other rules) reads as missing rather than being trusted.
 */
export class SpriteDocs {
  readonly #mesh: RecordStore;

  constructor(mesh: RecordStore) {
    this.#mesh = mesh;
  }

  /** The document `parse` accepts, or undefined when there is none or it fails the check. */
  read<T>(sprite: string, kind: DocKind, parse: (value: unknown) => T): T | undefined {
    const row = this.#mesh.store.get(spriteDocsTable, { sprite, kind });
    if (!row) return undefined;
    try {
      return parse(JSON.parse(row.doc));
    } catch {
      return undefined;
    }
  }

  /** Stores a document (already checked by the caller); ERR_BAD_REQUEST when it is too large to replicate. */
  write(sprite: string, kind: DocKind, doc: unknown): void {
    const text = JSON.stringify(doc);
    if (Buffer.byteLength(text) > MAX_DOC_BYTES) throw new PeerError('ERR_BAD_REQUEST', `the ${kind} document is over ${MAX_DOC_BYTES / 1024} KiB`);
    this.#mesh.write((tx) => tx.upsert(spriteDocsTable, { sprite, kind, doc: text, updated: new Date().toISOString() }));
  }

  /** Removes a document; a missing one is no change. */
  remove(sprite: string, kind: DocKind): void {
    this.#mesh.write((tx) => {
      if (tx.get(spriteDocsTable, { sprite, kind })) tx.delete(spriteDocsTable, { sprite, kind });
    });
  }

  /** Removes every document of a sprite (it was destroyed). */
  clear(sprite: string): void {
    this.#mesh.write((tx) => {
      for (const kind of KINDS) if (tx.get(spriteDocsTable, { sprite, kind })) tx.delete(spriteDocsTable, { sprite, kind });
    });
  }
}
