import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { chunkChangeset, defineTable, openStore } from '../../gossip/index.ts';
import { deliver, kv, pairs, SITE, state, storeDir } from './helpers.ts';

const dir = storeDir('gossip-persist');
after(() => dir.cleanup());

test('reopening a file gives the same state, site id, versions and bookkeeping', () => {
  const path = join(dir.dir, 'reopen.db');
  let clock = 1_000_000;
  const first = openStore({ path, tables: [kv, pairs], now: () => clock });
  const remote = dir.open({ siteId: SITE.c });
  const theirs = [1, 2, 3].map((i) => remote.transact((tx) => tx.upsert(kv, { k: `r${i}`, n: i }))!);
  deliver(first, theirs[0], theirs[2]);
  const big = remote.transact((tx) => {
    for (let i = 0; i < 3; i += 1) tx.upsert(kv, { k: `big${i}` });
  })!;
  first.apply([chunkChangeset(big, 4)[0]!]);
  assert.equal(first.health().partialVersions, 1);
  const mine = first.transact((tx) => {
    tx.upsert(kv, { k: 'mine', a: 'x', b: new Uint8Array([1, 2, 3]), f: true, r: -0.5 });
    tx.upsert(pairs, { owner: 'o', slot: 3, note: 'n' });
  })!;
  const before = state(first);
  const siteId = first.siteId;
  first.close();
  assert.throws(() => first.all(kv), { code: 'ERR_STORE_CLOSED' });

  // The wall clock went backwards meanwhile: timestamps must still grow.
  clock = 5;
  const again = openStore({ path, tables: [kv, pairs], now: () => clock });
  try {
    assert.equal(again.siteId, siteId);
    assert.equal(state(again), before);
    assert.deepEqual(again.heads(), { [SITE.c]: 1, [siteId]: 1 });
    assert.deepEqual(again.gaps(), { [SITE.c]: [[2, 2]] });
    assert.equal(again.health().partialVersions, 0, 'buffered chunks are not persisted');
    assert.equal(again.health().dbVersion, 1);
    const next = again.transact((tx) => tx.upsert(kv, { k: 'mine', n: 2 }))!;
    assert.equal(next.db_version, 2);
    assert.ok(next.ts > mine.ts, 'HLC keeps growing across a reopen');
    const journal = new Database(path, { readonly: true });
    assert.equal(journal.pragma('journal_mode', { simple: true }), 'wal');
    journal.close();
  } finally {
    again.close();
  }
});

test('remote timestamps advance the clock unless they are implausibly far ahead', () => {
  const local = dir.open({ now: () => 1000 });
  const ahead = dir.open({ siteId: SITE.b, now: () => 1000 + 30_000 });
  const broken = dir.open({ siteId: SITE.c, now: () => 1000 + 3_600_000 });
  deliver(local, ahead.transact((tx) => tx.upsert(kv, { k: 'a' })));
  const afterAhead = local.transact((tx) => tx.upsert(kv, { k: 'x' }))!;
  assert.equal(afterAhead.ts, (31_000n << 16n) + 1n);
  deliver(local, broken.transact((tx) => tx.upsert(kv, { k: 'b' })));
  const afterBroken = local.transact((tx) => tx.upsert(kv, { k: 'y' }))!;
  assert.equal(afterBroken.ts, afterAhead.ts + 1n);
});

test('a file refuses another site id and an incompatible schema, and takes added columns', () => {
  const path = join(dir.dir, 'schema.db');
  const v1 = defineTable({ name: 'items', primaryKey: ['id'], columns: { id: 'integer', label: 'text' } });
  const store = openStore({ path, tables: [v1], siteId: SITE.d });
  store.transact((tx) => tx.upsert(v1, { id: 1, label: 'one' }));
  store.close();
  assert.throws(() => openStore({ path, tables: [v1], siteId: SITE.e }), { code: 'ERR_STORE_OPEN' });
  const retyped = defineTable({ name: 'items', primaryKey: ['id'], columns: { id: 'integer', label: 'integer' } });
  assert.throws(() => openStore({ path, tables: [retyped] }), { code: 'ERR_STORE_OPEN' });
  const dropped = defineTable({ name: 'items', primaryKey: ['id'], columns: { id: 'integer' } });
  assert.throws(() => openStore({ path, tables: [dropped] }), { code: 'ERR_STORE_OPEN' });
  const grown = defineTable({ name: 'items', primaryKey: ['id'], columns: { id: 'integer', label: 'text', weight: { type: 'real', default: 2 }, tag: { type: 'text', nullable: true } } });
  const reopened = openStore({ path, tables: [grown] });
  try {
    assert.equal(reopened.siteId, SITE.d);
    assert.deepEqual(reopened.all(grown), [{ id: 1, label: 'one', weight: 2, tag: null }]);
  } finally {
    reopened.close();
  }
  assert.throws(() => openStore({ path: ':memory:', tables: [v1], siteId: 'ABC' }), { code: 'ERR_STORE_OPEN' });
  assert.throws(() => openStore({ path: ':memory:', tables: [v1, v1] }), { code: 'ERR_STORE_SCHEMA' });
});

test('table definitions are checked', () => {
  const bad: (() => unknown)[] = [
    () => defineTable({ name: 'Bad', primaryKey: ['id'], columns: { id: 'text' } }),
    () => defineTable({ name: 'crdt_x', primaryKey: ['id'], columns: { id: 'text' } }),
    () => defineTable({ name: 't', primaryKey: [], columns: { id: 'text' } }),
    () => defineTable({ name: 't', primaryKey: ['id', 'id'], columns: { id: 'text' } }),
    () => defineTable({ name: 't', primaryKey: ['id'], columns: { id: { type: 'text', nullable: true } } }),
    () => defineTable({ name: 't', primaryKey: ['id'], columns: { id: 'real' } }),
    () => defineTable({ name: 't', primaryKey: ['id'], columns: { id: 'text', 'x-y': 'text' } }),
    () => defineTable({ name: 't', primaryKey: ['id'], columns: { id: 'text', n: { type: 'integer', default: 'one' } } }),
    () => defineTable({ name: 't', primaryKey: ['id'], columns: { id: 'text', n: { type: 'text', default: null } } }),
    () => defineTable({ name: 't', primaryKey: ['missing' as never], columns: { id: 'text' } }),
  ];
  for (const define of bad) assert.throws(define, { code: 'ERR_STORE_SCHEMA' });
  const ok = defineTable({ name: 't', primaryKey: ['id'], columns: { id: 'blob', on: { type: 'boolean', default: true } } });
  assert.equal(ok.info[1]?.default, 1);
  assert.ok(Object.isFrozen(ok));
});
