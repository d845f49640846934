import type { VersionInfo } from './bookkeeping.ts';
import type { Range } from './ranges.ts';
import type { Change, Changeset } from './types.ts';
import type { SqlValue } from './values.ts';

/** What serving needs to read from a store. */
export interface ServeSource {
  /** Known version ranges of the site, sorted. */
  knownOf(siteId: string): Range[];
  /** Lowest version in [from, to] with a surviving change. */
  nextVersionWithChanges(siteId: string, from: number, to: number): number | undefined;
  /** last_seq and ts of a version with surviving changes. */
  versionInfo(siteId: string, version: number): VersionInfo | undefined;
  /** Surviving changes of a version from a seq on, at most `limit`, by seq. */
  changesOf(siteId: string, version: number, ts: bigint, fromSeq: number, limit: number): Change[];
}

/** Bounds of one chunk: at most `maxChanges` changes and, past the first change, `maxBytes` estimated bytes. */
export interface ChunkLimits {
  maxChanges: number;
  maxBytes: number;
}

/** A rough upper bound of a change's encoded size, for chunking by bytes. */
export function changeSize(change: Change): number {
  const valueSize = (value: SqlValue): number => (value === null ? 1 : typeof value === 'number' ? 9 : typeof value === 'string' ? 5 + Buffer.byteLength(value) : 5 + value.byteLength);
  return 24 + Buffer.byteLength(change.table) + Buffer.byteLength(change.cid) + valueSize(change.val) + change.pk.reduce((sum: number, value) => sum + valueSize(value), 0);
}

/** How many of `changes` (in order) fit one chunk; at least one so every chunk makes progress. */
function fitting(changes: readonly Change[], limits: ChunkLimits): number {
  let bytes = 0;
  for (const [i, change] of changes.entries()) {
    bytes += changeSize(change);
    if (i >= limits.maxChanges || (i > 0 && bytes > limits.maxBytes)) return i;
  }
  return changes.length;
}

/**
 * Yields what this store can serve of a site's versions in [from, to]: each known version with
 * surviving changes as chunks within `limits` whose seq spans cover 0..last_seq, and each run of
 * known versions without surviving changes as one cleared range. Unknown versions are skipped (ask
 * another peer). Each step reads the database afresh, so writes between steps are fine.
 */
export function* serveVersions(source: ServeSource, siteId: string, from: number, to: number, limits: ChunkLimits): Generator<Changeset> {
  for (const [lo, hi] of source.knownOf(siteId)) {
    if (hi < from) continue;
    if (lo > to) break;
    let version = Math.max(lo, from);
    const end = Math.min(hi, to);
    while (version <= end) {
      const next = source.nextVersionWithChanges(siteId, version, end);
      if (next === undefined || next > version) {
        const clearedTo = next === undefined ? end : next - 1;
        yield { site_id: siteId, db_version: version, last_seq: 0, seqs: [0, 0], ts: 0n, changes: [], cleared_to: clearedTo };
        version = clearedTo + 1;
        continue;
      }
      yield* serveVersion(source, siteId, version, limits);
      version += 1;
    }
  }
}

function* serveVersion(source: ServeSource, siteId: string, version: number, limits: ChunkLimits): Generator<Changeset> {
  const info = source.versionInfo(siteId, version);
  const ts = info?.ts ?? 0n;
  let fromSeq = 0;
  for (;;) {
    const page = source.changesOf(siteId, version, ts, fromSeq, limits.maxChanges + 1);
    // Without a version record (cleared meanwhile) the last surviving seq closes the version.
    const lastSeq = Math.max(info?.lastSeq ?? 0, page.at(-1)?.seq ?? 0, fromSeq);
    const count = fitting(page, limits);
    if (count === page.length) {
      yield { site_id: siteId, db_version: version, last_seq: lastSeq, seqs: [fromSeq, lastSeq], ts, changes: page };
      return;
    }
    const chunk = page.slice(0, count);
    const upTo = chunk.at(-1)!.seq;
    yield { site_id: siteId, db_version: version, last_seq: lastSeq, seqs: [fromSeq, upTo], ts, changes: chunk };
    fromSeq = upTo + 1;
  }
}

/**
 * Splits a changeset into chunks of at most `maxChanges` changes and, past a chunk's first change,
 * about `maxBytes` bytes, whose seq spans together cover the original span (gossip broadcast needs
 * bounded payloads). A cleared range or a changeset within the bounds comes back as the only element.
 */
export function chunkChangeset(changeset: Changeset, maxChanges = 256, maxBytes = 1024 * 1024): Changeset[] {
  const bounds: ChunkLimits = { maxChanges: Math.max(1, Math.floor(maxChanges)), maxBytes: Math.max(1, Math.floor(maxBytes)) };
  const rest = [...changeset.changes].sort((a, b) => a.seq - b.seq);
  if (fitting(rest, bounds) === rest.length) return [changeset];
  const chunks: Changeset[] = [];
  let start = changeset.seqs[0];
  while (rest.length > 0) {
    const changes = rest.splice(0, fitting(rest, bounds));
    const end = rest.length === 0 ? changeset.seqs[1] : changes.at(-1)!.seq;
    chunks.push({ ...changeset, seqs: [start, end], changes });
    start = end + 1;
  }
  return chunks;
}
