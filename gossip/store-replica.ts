import { decodeChangesets, encodeChangesets } from './store/codec.ts';
import { chunkChangeset } from './store/serve.ts';
import type { CrdtStore } from './store/store.ts';
import type { Changeset } from './store/types.ts';
import type { Range } from './ranges.ts';
import type { ReceiveResult, Replica } from './replica.ts';

/** Changes per wire batch: keeps a batch far below the codec's 4 MiB cap even with large values. */
const CHANGES_PER_BATCH = 256;

/** A batch from a peer that the store refused (some or all of its changesets). */
export class RejectedBatchError extends Error {
  readonly code = 'ERR_GOSSIP_REJECTED';
  constructor(message: string) {
    super(message);
    this.name = 'RejectedBatchError';
  }
}

/** Adapts a CRDT store to what broadcast and anti-entropy need. */
export function storeReplica(store: CrdtStore): Replica {
  return {
    known: () => store.known(),
    serve: (site, [from, to]) => batches(store.changesFor(site, from, to, { maxChanges: CHANGES_PER_BATCH })),
    receive: (batch) => {
      const changesets = decodeChangesets(batch);
      const result = store.apply(changesets);
      if (result.rejected > 0) {
        const first = result.rejections[0];
        throw new RejectedBatchError(`${result.rejected} of ${changesets.length} changesets rejected: ${first?.code} ${first?.message}`);
      }
      return { completed: result.applied, behind: lacksAny(store, newestPerSite(changesets)), refused: result.dropped } satisfies ReceiveResult;
    },
    lacksUpTo: (site, version) => (store.heads()[site] ?? 0) < version,
  };
}

/** Encodes one committed changeset as wire batches (one, unless it is very large). */
export function encodeCommit(changeset: Changeset): Uint8Array[] {
  return chunkChangeset(changeset, CHANGES_PER_BATCH).map((chunk) => encodeChangesets([chunk]));
}

function batches(changesets: Iterable<Changeset>): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pending: Changeset[] = [];
  let changes = 0;
  for (const changeset of changesets) {
    if (changes + changeset.changes.length > CHANGES_PER_BATCH && pending.length > 0) {
      out.push(encodeChangesets(pending));
      pending = [];
      changes = 0;
    }
    pending.push(changeset);
    changes += changeset.changes.length;
  }
  if (pending.length > 0) out.push(encodeChangesets(pending));
  return out;
}

function newestPerSite(changesets: readonly Changeset[]): Map<string, number> {
  const newest = new Map<string, number>();
  for (const cs of changesets) newest.set(cs.site_id, Math.max(newest.get(cs.site_id) ?? 0, cs.cleared_to ?? cs.db_version));
  return newest;
}

function lacksAny(store: CrdtStore, newest: Map<string, number>): boolean {
  const heads = store.heads();
  for (const [site, version] of newest) if ((heads[site] ?? 0) < version) return true;
  return false;
}

export type { Range };
