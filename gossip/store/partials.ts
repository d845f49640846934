import { normalizeRanges } from './ranges.ts';
import type { Range } from './ranges.ts';
import type { Change, Changeset } from './types.ts';

/** Caps of the partial-version buffer. */
export interface PartialLimits {
  /** Partial versions held in all. @default 256 */
  maxPartialVersions: number;
  /** Partial versions held per site. @default 32 */
  maxPartialVersionsPerSite: number;
  /** Changes held in all partial versions. @default 65536 */
  maxBufferedChanges: number;
}

interface PartialVersion {
  siteId: string;
  version: number;
  lastSeq: number;
  ts: bigint;
  covered: Range[];
  changes: Map<number, Change>;
}

/** What adding a chunk did: completed its version, kept it, or found it contradicting earlier chunks. */
export type PartialOutcome =
  | { kind: 'complete'; changeset: Changeset }
  | { kind: 'buffered' }
  | { kind: 'conflict'; message: string };

/**
 * Holds chunks of versions until every seq 0..last_seq is covered. Bounded: over a cap the oldest
 * partial versions (by first chunk) are dropped, and become gaps that sync fills later.
 */
export class PartialBuffer {
  readonly #limits: PartialLimits;
  readonly #partials = new Map<string, PartialVersion>();
  readonly #perSite = new Map<string, number>();
  #changes = 0;
  #dropped = 0;

  constructor(limits: PartialLimits) {
    this.#limits = limits;
  }

  /**
   * Adds a validated chunk (not a cleared range). Returns the complete changeset, with all seqs
   * covered and changes sorted by seq, once the last missing chunk arrives; a chunk whose last_seq or
   * ts differs from the buffered ones is a conflict and is not kept.
   */
  add(chunk: Changeset): PartialOutcome {
    const key = `${chunk.site_id}:${chunk.db_version}`;
    let partial = this.#partials.get(key);
    if (partial && (partial.lastSeq !== chunk.last_seq || partial.ts !== chunk.ts)) {
      return { kind: 'conflict', message: `chunk disagrees with buffered chunks of ${key} on last_seq or ts` };
    }
    if (!partial) {
      partial = { siteId: chunk.site_id, version: chunk.db_version, lastSeq: chunk.last_seq, ts: chunk.ts, covered: [], changes: new Map() };
      this.#partials.set(key, partial);
      this.#perSite.set(chunk.site_id, (this.#perSite.get(chunk.site_id) ?? 0) + 1);
    }
    partial.covered = normalizeRanges([...partial.covered, chunk.seqs]);
    for (const change of chunk.changes) {
      if (partial.changes.has(change.seq)) continue;
      partial.changes.set(change.seq, change);
      this.#changes += 1;
    }
    const [only] = partial.covered;
    if (partial.covered.length === 1 && only![0] === 0 && only![1] === partial.lastSeq) {
      this.#remove(key);
      const changes = [...partial.changes.values()].sort((a, b) => a.seq - b.seq);
      return { kind: 'complete', changeset: { site_id: partial.siteId, db_version: partial.version, last_seq: partial.lastSeq, seqs: [0, partial.lastSeq], ts: partial.ts, changes } };
    }
    this.#enforceCaps(chunk.site_id);
    return { kind: 'buffered' };
  }

  /** Forgets partial versions of a site within [from, to] (they arrived whole or were cleared). */
  drop(siteId: string, from: number, to: number): void {
    for (const [key, partial] of this.#partials) {
      if (partial.siteId === siteId && partial.version >= from && partial.version <= to) this.#remove(key);
    }
  }

  /** Partial versions held. */
  get versions(): number {
    return this.#partials.size;
  }

  /** Changes held. */
  get changes(): number {
    return this.#changes;
  }

  /** Partial versions dropped over a cap since creation. */
  get dropped(): number {
    return this.#dropped;
  }

  #enforceCaps(siteId: string): void {
    // Oldest first: Map iteration follows insertion, and re-adding chunks keeps a version's place.
    while ((this.#perSite.get(siteId) ?? 0) > this.#limits.maxPartialVersionsPerSite) {
      const oldest = [...this.#partials].find(([, partial]) => partial.siteId === siteId);
      if (!oldest) break;
      this.#evict(oldest[0]);
    }
    while (this.#partials.size > this.#limits.maxPartialVersions || this.#changes > this.#limits.maxBufferedChanges) {
      const oldest = this.#partials.keys().next();
      if (oldest.done) break;
      this.#evict(oldest.value);
    }
  }

  #evict(key: string): void {
    this.#remove(key);
    this.#dropped += 1;
  }

  #remove(key: string): void {
    const partial = this.#partials.get(key);
    if (!partial) return;
    this.#partials.delete(key);
    this.#changes -= partial.changes.size;
    const count = (this.#perSite.get(partial.siteId) ?? 1) - 1;
    if (count > 0) this.#perSite.set(partial.siteId, count);
    else this.#perSite.delete(partial.siteId);
  }
}
