import type { KeyOf, RowOf, TableDef } from './schema.ts';
import type { CrdtStore } from './api.ts';
import { encodeKey } from './values.ts';

/** A Map of a table's live rows kept current by change events. */
export interface MaterializedView<K, V> {
  /** The current rows by key; read-only, replaced entries are new objects. */
  readonly map: ReadonlyMap<K, V>;
  /** Stops following the store; the map keeps its last state. */
  close(): void;
}

/**
 * Keeps a Map of a table's live rows under `key(row)`, loaded from the store and then updated by its
 * events. The key should be unique per row (a function of the primary key is safest); when a row's key
 * changes, the old entry goes.
 */
export function materialize<D extends TableDef, K>(store: Pick<CrdtStore, 'all' | 'subscribe'>, table: D, key: (row: RowOf<D>) => K): MaterializedView<K, RowOf<D>> {
  const map = new Map<K, RowOf<D>>();
  // Deletes carry no row, so remember which map key each primary key is under.
  const keys = new Map<string, K>();
  const pkId = (pk: KeyOf<D>): string => encodeKey(table.primaryKey.map((name) => (pk as Record<string, unknown>)[name] as never));
  const put = (row: RowOf<D>): void => {
    const id = pkId(row as unknown as KeyOf<D>);
    const old = keys.get(id);
    const next = key(row);
    if (old !== undefined && old !== next) map.delete(old);
    keys.set(id, next);
    map.set(next, row);
  };
  for (const row of store.all(table)) put(row);
  const unsubscribe = store.subscribe(table, (event) => {
    if (event.row) {
      put(event.row);
      return;
    }
    const id = pkId(event.pk);
    const old = keys.get(id);
    keys.delete(id);
    if (old !== undefined) map.delete(old);
  });
  return { map, close: unsubscribe };
}
