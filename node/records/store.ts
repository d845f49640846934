import type { CrdtStore, StoreTx } from '../../gossip/index.ts';

/**
 * Where records live: the replicated store (read locally) and its local writer, which commits a
 * transaction and gossips it. The mesh is one; tests give a bare store with `transact` as writer.
 */
export interface RecordStore {
  readonly store: Pick<CrdtStore, 'get' | 'all' | 'subscribe'>;
  write(fn: (tx: StoreTx) => void): unknown;
}
