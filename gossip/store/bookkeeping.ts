import type Database from 'better-sqlite3';
import type { Range } from './ranges.ts';

/** Last seq and timestamp of a version that still has surviving changes. */
export interface VersionInfo {
  lastSeq: number;
  ts: bigint;
}

/**
 * Which versions of each site this store knows (applied, or known to be cleared), as disjoint
 * ranges in `crdt_known`, plus `crdt_versions`: last_seq and ts of versions that still have
 * surviving changes in the clock table (needed to re-serve them).
 */
export class Bookkeeping {
  readonly #overlapping: Database.Statement;
  readonly #deleteSpan: Database.Statement;
  readonly #insertRange: Database.Statement;
  readonly #floor: Database.Statement;
  readonly #bySite: Database.Statement;
  readonly #all: Database.Statement;
  readonly #insertVersion: Database.Statement;
  readonly #version: Database.Statement;
  readonly #deleteVersion: Database.Statement;
  readonly #hasChanges: Database.Statement;

  constructor(db: Database.Database) {
    this.#overlapping = db.prepare('SELECT lo, hi FROM crdt_known WHERE site_id = ? AND lo <= ? AND hi >= ?');
    this.#deleteSpan = db.prepare('DELETE FROM crdt_known WHERE site_id = ? AND lo >= ? AND lo <= ?');
    this.#insertRange = db.prepare('INSERT INTO crdt_known (site_id, lo, hi) VALUES (?, ?, ?)');
    this.#floor = db.prepare('SELECT lo, hi FROM crdt_known WHERE site_id = ? AND lo <= ? ORDER BY lo DESC LIMIT 1');
    this.#bySite = db.prepare('SELECT lo, hi FROM crdt_known WHERE site_id = ? ORDER BY lo');
    this.#all = db.prepare('SELECT site_id, lo, hi FROM crdt_known ORDER BY site_id, lo');
    this.#insertVersion = db.prepare('INSERT OR REPLACE INTO crdt_versions (site_id, db_version, last_seq, ts) VALUES (?, ?, ?, ?)');
    this.#version = db.prepare('SELECT last_seq, ts FROM crdt_versions WHERE site_id = ? AND db_version = ?').safeIntegers(true);
    this.#deleteVersion = db.prepare('DELETE FROM crdt_versions WHERE site_id = ? AND db_version = ?');
    this.#hasChanges = db.prepare('SELECT 1 FROM crdt_clock WHERE site_id = ? AND db_version = ? LIMIT 1');
  }

  /** Whether every version in [lo, hi] of the site is known. */
  isKnown(siteId: string, lo: number, hi = lo): boolean {
    const range = this.#floor.get(siteId, lo) as { lo: number; hi: number } | undefined;
    return range !== undefined && range.hi >= hi;
  }

  /** Marks versions [lo, hi] of the site known, merging ranges; returns false if they all were. */
  addKnown(siteId: string, lo: number, hi = lo): boolean {
    if (this.isKnown(siteId, lo, hi)) return false;
    const touching = this.#overlapping.all(siteId, hi + 1, lo - 1) as { lo: number; hi: number }[];
    const from = Math.min(lo, ...touching.map((range) => range.lo));
    const to = Math.max(hi, ...touching.map((range) => range.hi));
    this.#deleteSpan.run(siteId, from, to);
    this.#insertRange.run(siteId, from, to);
    return true;
  }

  /** Known ranges of one site, sorted. */
  knownOf(siteId: string): Range[] {
    return (this.#bySite.all(siteId) as { lo: number; hi: number }[]).map(({ lo, hi }) => [lo, hi]);
  }

  /** Known ranges of every site. */
  known(): Map<string, Range[]> {
    const out = new Map<string, Range[]>();
    for (const { site_id, lo, hi } of this.#all.all() as { site_id: string; lo: number; hi: number }[]) {
      const list = out.get(site_id) ?? [];
      list.push([lo, hi]);
      out.set(site_id, list);
    }
    return out;
  }

  /** Records last_seq and ts of a version whose changes enter the clock table. */
  recordVersion(siteId: string, version: number, lastSeq: number, ts: bigint): void {
    this.#insertVersion.run(siteId, version, lastSeq, ts);
  }

  /** last_seq and ts of a version with surviving changes, or undefined. */
  versionInfo(siteId: string, version: number): VersionInfo | undefined {
    const row = this.#version.get(siteId, version) as { last_seq: bigint; ts: bigint } | undefined;
    return row && { lastSeq: Number(row.last_seq), ts: row.ts };
  }

  /** Drops the version records of `site:version` keys that no longer have a change in the clock table. */
  forgetCleared(keys: Iterable<string>): void {
    for (const key of keys) {
      const at = key.lastIndexOf(':');
      const siteId = key.slice(0, at);
      const version = Number(key.slice(at + 1));
      if (!this.#hasChanges.get(siteId, version)) this.#deleteVersion.run(siteId, version);
    }
  }
}

/** The key of a version in sets of versions. */
export function versionKey(siteId: string, version: number): string {
  return `${siteId}:${version}`;
}
