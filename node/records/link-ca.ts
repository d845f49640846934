import type { RecordStore } from './store.ts';
import { linkCaTable } from './tables.ts';

/** The peer-link CA as the links read it: one JSON `{cert, key}` text in the replicated store. */
export interface LinkCaStore {
  get(): string | undefined;
  put(pair: string): void;
  /** Calls `listener` whenever the CA row changes; returns the unsubscribe. */
  onChange(listener: (pair: string | undefined) => void): () => void;
}

const ID = 'mesh';

/** The `link_ca` row of the replicated store. */
export function linkCaStore(mesh: RecordStore): LinkCaStore {
  return {
    get: () => mesh.store.get(linkCaTable, { id: ID })?.pair,
    put: (pair) => mesh.write((tx) => tx.upsert(linkCaTable, { id: ID, pair, created: new Date().toISOString() })),
    onChange: (listener) => mesh.store.subscribe(linkCaTable, (event) => {
      if (event.pk.id === ID) listener(event.row?.pair);
    }),
  };
}
