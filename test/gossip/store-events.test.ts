import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { defineTable, materialize, openStore } from '../../gossip/index.ts';
import type { ChangeEvent } from '../../gossip/index.ts';
import { deliver, kv, pairs, storeDir } from './helpers.ts';

const dir = storeDir('gossip-events');
after(() => dir.cleanup());

test('subscribers get one event per changed row after commit, typed, with its origin', () => {
  const a = dir.open();
  const b = dir.open();
  const seen: ChangeEvent<typeof kv>[] = [];
  const other: unknown[] = [];
  const stop = b.subscribe(kv, (event) => {
    // Events come after the commit: the store already shows the row.
    assert.deepEqual(b.get(kv, event.pk), event.row);
    seen.push(event);
  });
  b.subscribe(pairs, (event) => other.push(event));
  const local = b.transact((tx) => {
    tx.upsert(kv, { k: 'x', n: 1 });
    tx.upsert(kv, { k: 'x', n: 2, f: true });
  });
  assert.ok(local);
  assert.deepEqual(seen, [{ table: 'kv', pk: { k: 'x' }, row: { k: 'x', a: null, n: 2, f: true, r: 1.5, b: null }, origin: 'local' }]);
  deliver(b, a.transact((tx) => tx.upsert(kv, { k: 'y', b: new Uint8Array([5]) })));
  assert.equal(seen.length, 2);
  assert.equal(seen[1]?.origin, 'remote');
  assert.deepEqual(seen[1]?.row?.b, new Uint8Array([5]));
  b.transact((tx) => tx.delete(kv, { k: 'x' }));
  assert.deepEqual(seen[2], { table: 'kv', pk: { k: 'x' }, row: undefined, origin: 'local' });
  // A transaction that ends where it began, and a losing remote write, change no row.
  b.transact((tx) => {
    tx.upsert(kv, { k: 'y', n: 9 });
    tx.upsert(kv, { k: 'y', n: 0 });
  });
  deliver(b, a.transact((tx) => tx.upsert(kv, { k: 'y', n: 5 })));
  assert.equal(b.get(kv, { k: 'y' })?.n, 0, 'col_version 2 loses to 3');
  assert.equal(seen.length, 3);
  stop();
  b.transact((tx) => tx.upsert(kv, { k: 'z' }));
  assert.equal(seen.length, 3);
  assert.deepEqual(other, []);
});

test('a throwing listener is logged and neither undoes the commit nor silences others', () => {
  const warnings: unknown[] = [];
  const store = openStore({ path: `${dir.dir}/listener.db`, tables: [kv], logger: { warn: (message, fields) => warnings.push({ message, fields }) } });
  try {
    const calls: string[] = [];
    store.subscribe(kv, () => {
      throw new Error('listener bug');
    });
    store.subscribe(kv, (event) => {
      calls.push(event.pk.k);
      // Listeners may write: the transaction is over.
      if (event.pk.k === 'first') store.transact((tx) => tx.upsert(kv, { k: 'second' }));
    });
    store.transact((tx) => tx.upsert(kv, { k: 'first' }));
    assert.deepEqual(calls.sort(), ['first', 'second']);
    assert.equal(store.all(kv).length, 2);
    assert.equal(warnings.length, 2);
  } finally {
    store.close();
  }
});

test('materialize keeps a Map current through local and remote changes', () => {
  const routes = defineTable({ name: 'routes', primaryKey: ['name'], columns: { name: 'text', host: 'text', port: 'integer' } });
  const a = openStore({ path: `${dir.dir}/routes-a.db`, tables: [routes] });
  const b = openStore({ path: `${dir.dir}/routes-b.db`, tables: [routes] });
  try {
    b.transact((tx) => tx.upsert(routes, { name: 'pre', host: 'h0', port: 1 }));
    const view = materialize(b, routes, (row) => row.host);
    assert.deepEqual([...view.map.keys()], ['h0']);
    deliver(b, a.transact((tx) => {
      tx.upsert(routes, { name: 'web', host: 'h1', port: 80 });
      tx.upsert(routes, { name: 'api', host: 'h2', port: 81 });
    }));
    assert.deepEqual([...view.map.keys()].sort(), ['h0', 'h1', 'h2']);
    b.transact((tx) => tx.upsert(routes, { name: 'web', host: 'h9' }));
    assert.equal(view.map.has('h1'), false, 'the old key goes when a row moves');
    assert.equal(view.map.get('h9')?.port, 80);
    deliver(b, a.transact((tx) => tx.delete(routes, { name: 'api' })));
    assert.deepEqual([...view.map.keys()].sort(), ['h0', 'h9']);
    view.close();
    b.transact((tx) => tx.delete(routes, { name: 'pre' }));
    assert.ok(view.map.has('h0'), 'a closed view stops following');
  } finally {
    a.close();
    b.close();
  }
});
