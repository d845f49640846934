import type { SpriteDocs } from '../records/index.ts';

/**
 * Where a sprite's checkpoints come from. The disk's head derives from the checkpoint taken or
 * restored last (`head`); a new checkpoint's source is that head. Kept in the replicated sprite
 * documents, so the lineage follows the sprite to another peer.
 */
interface Lineage {
  head: string | null;
  /** Checkpoint id to the id it was taken from. */
  sources: Record<string, string>;
}

const ID = /^v\d{1,9}$/;
const MAX_SOURCES = 2048;
/** How far back `history` walks. */
const MAX_HISTORY = 100;

/** Checks a lineage document read from the store; throws on anything else. */
export function parseLineage(value: unknown): Lineage {
  const { head, sources } = (value ?? {}) as { head?: unknown; sources?: unknown };
  if (head !== null && (typeof head !== 'string' || !ID.test(head))) throw new Error('bad head');
  if (typeof sources !== 'object' || sources === null || Array.isArray(sources)) throw new Error('bad sources');
  const entries = Object.entries(sources);
  if (entries.length > MAX_SOURCES || !entries.every(([id, source]) => ID.test(id) && typeof source === 'string' && ID.test(source))) throw new Error('bad sources');
  return { head, sources: Object.fromEntries(entries) as Record<string, string> };
}

/** The lineage of one sprite's checkpoints (by sprite id), read and changed through the sprite documents. */
export class CheckpointLineage {
  readonly #docs: SpriteDocs;

  constructor(docs: SpriteDocs) {
    this.#docs = docs;
  }

  /** The checkpoint `id` was taken from, if known. */
  source(sprite: string, id: string): string | undefined {
    return this.#read(sprite).sources[id];
  }

  /** The checkpoints `id` descends from, nearest first (its source, that one's source, ...). */
  history(sprite: string, id: string): string[] {
    const { sources } = this.#read(sprite);
    const line: string[] = [];
    for (let at = sources[id]; at !== undefined && !line.includes(at) && line.length < MAX_HISTORY; at = sources[at]) line.push(at);
    return line;
  }

  /** Checkpoint `id` was just taken: its source is the head's, and the head now derives from it. `existing` prunes gone ones. */
  taken(sprite: string, id: string, existing: readonly string[]): void {
    const lineage = this.#read(sprite);
    const keep = new Set(existing);
    const sources = Object.fromEntries(Object.entries(lineage.sources).filter(([checkpoint]) => keep.has(checkpoint)).slice(-(MAX_SOURCES - 1)));
    if (lineage.head !== null) sources[id] = lineage.head;
    this.#docs.write(sprite, 'lineage', { head: id, sources });
  }

  /** The disk was restored to checkpoint `id`: the next checkpoint comes from it. */
  restored(sprite: string, id: string): void {
    this.#docs.write(sprite, 'lineage', { ...this.#read(sprite), head: id });
  }

  /** Checkpoint `id` is gone; those taken from it keep naming it as their source. */
  deleted(sprite: string, id: string): void {
    const { head, sources } = this.#read(sprite);
    delete sources[id];
    this.#docs.write(sprite, 'lineage', { head, sources });
  }

  #read(sprite: string): Lineage {
    return this.#docs.read(sprite, 'lineage', parseLineage) ?? { head: null, sources: {} };
  }
}
