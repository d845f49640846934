import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { compareValues, SENTINEL } from '../../gossip/index.ts';
import type { Changeset, CrdtStore } from '../../gossip/index.ts';
import { deliver, kv, pairs, pull, SITE, state, storeDir } from './helpers.ts';

const dir = storeDir('gossip-merge');
after(() => dir.cleanup());

/** Two stores that share a row k1 created by the first. */
function pair(siteA: string = SITE.a, siteB: string = SITE.b): [CrdtStore, CrdtStore] {
  const a = dir.open({ siteId: siteA });
  const b = dir.open({ siteId: siteB });
  deliver(b, a.transact((tx) => tx.upsert(kv, { k: 'k1', a: 'base', n: 1 })));
  return [a, b];
}

function exchange(a: CrdtStore, b: CrdtStore): void {
  pull(a, b);
  pull(b, a);
}

function clockOf(store: CrdtStore, cid: string): unknown[] {
  const entry = store.dump().clock.find((row) => row[2] === cid);
  assert.ok(entry, `clock of ${cid}`);
  return entry;
}

test('a higher col_version wins over a larger value', () => {
  const [a, b] = pair();
  a.transact((tx) => tx.upsert(kv, { k: 'k1', n: 2 }));
  a.transact((tx) => tx.upsert(kv, { k: 'k1', n: 3 }));
  b.transact((tx) => tx.upsert(kv, { k: 'k1', n: 100 }));
  exchange(a, b);
  assert.equal(a.get(kv, { k: 'k1' })?.n, 3);
  assert.equal(b.get(kv, { k: 'k1' })?.n, 3);
  assert.equal(clockOf(b, 'n')[4], 3, 'col_version 3 kept');
});

test('at equal col_version the larger value wins, before the site id is looked at', () => {
  // The site with the smaller id writes the larger value.
  const [a, b] = pair(SITE.b, SITE.a);
  a.transact((tx) => tx.upsert(kv, { k: 'k1', a: 'apple' }));
  b.transact((tx) => tx.upsert(kv, { k: 'k1', a: 'banana' }));
  exchange(a, b);
  assert.equal(a.get(kv, { k: 'k1' })?.a, 'banana');
  assert.equal(b.get(kv, { k: 'k1' })?.a, 'banana');
  assert.equal(state(a), state(b));
});

test('at equal col_version and value the larger site id wins the clock', () => {
  const [a, b] = pair(SITE.a, SITE.c);
  a.transact((tx) => tx.upsert(kv, { k: 'k1', a: 'same' }));
  b.transact((tx) => tx.upsert(kv, { k: 'k1', a: 'same' }));
  exchange(a, b);
  assert.equal(clockOf(a, 'a')[6], SITE.c);
  assert.equal(clockOf(b, 'a')[6], SITE.c);
  assert.equal(state(a), state(b));
});

test('values order null < numbers < text (by UTF-8 bytes) < blobs', () => {
  const ordered = [null, -5, 0, 2.5, 3, '', 'a', 'b', 'é', '\uffff', '😀', new Uint8Array(), new Uint8Array([0]), new Uint8Array([0, 1]), new Uint8Array([1])];
  for (const [i, x] of ordered.entries()) {
    for (const [j, y] of ordered.entries()) assert.equal(compareValues(x, y), Math.sign(i - j), `${String(x)} vs ${String(y)}`);
  }
  // UTF-16 order would put the surrogate pair first; UTF-8 (SQLite) order does not.
  assert.ok('😀' < '\uffff');
  assert.equal(compareValues(3, 3.0), 0);
});

test('a delete beats a concurrent update whatever the delivery order', () => {
  const [a, b] = pair();
  const del = a.transact((tx) => tx.delete(kv, { k: 'k1' }));
  const upd = b.transact((tx) => tx.upsert(kv, { k: 'k1', n: 5 }));
  assert.equal(del?.changes[0]?.cid, SENTINEL);
  assert.equal(del?.changes[0]?.cl, 2);
  const base = a.changesFor(SITE.a, 1, 1).next().value as Changeset;
  const first = dir.open();
  const second = dir.open();
  deliver(first, base, upd, del);
  deliver(second, del, upd, base);
  exchange(a, b);
  for (const store of [a, b, first, second]) assert.equal(store.get(kv, { k: 'k1' }), undefined);
  assert.deepEqual(first.dump().rows, [['kv', '["k1"]', 2]]);
  assert.equal(state(first), state(second));
});

test('a reinsert after a delete resurrects the row with fresh columns and ignores older writes', () => {
  const [a, b] = pair();
  const c = dir.open();
  pull(c, a);
  deliver(b, a.transact((tx) => tx.delete(kv, { k: 'k1' })));
  const again = b.transact((tx) => tx.upsert(kv, { k: 'k1', n: 9 }));
  assert.deepEqual(again?.changes.map((change) => [change.cid, change.cl, change.col_version]), [
    [SENTINEL, 3, 3], ['a', 3, 1], ['n', 3, 1], ['f', 3, 1], ['r', 3, 1], ['b', 3, 1],
  ]);
  // c never saw the delete; its update is at causal length 1.
  c.transact((tx) => tx.upsert(kv, { k: 'k1', a: 'late' }));
  exchange(a, b);
  exchange(a, c);
  exchange(b, c);
  const expected = { k: 'k1', a: null, n: 9, f: false, r: 1.5, b: null };
  for (const store of [a, b, c]) assert.deepEqual(store.get(kv, { k: 'k1' }), expected);
  assert.equal(state(a), state(c));
});

test('a column write at a higher causal length resets the row and a stale sentinel is ignored', () => {
  const [a] = pair();
  a.transact((tx) => tx.upsert(kv, { k: 'k1', f: true, b: new Uint8Array([7]) }));
  const write = (site: string, cid: string, cl: number, val: Changeset['changes'][number]['val']): Changeset => ({
    site_id: site, db_version: 1, last_seq: 0, seqs: [0, 0], ts: 5n,
    changes: [{ table: 'kv', pk: ['k1'], cid, val, col_version: cid === SENTINEL ? cl : 1, db_version: 1, seq: 0, site_id: site, cl, ts: 5n }],
  });
  deliver(a, write(SITE.c, 'n', 3, 42));
  assert.deepEqual(a.get(kv, { k: 'k1' }), { k: 'k1', a: null, n: 42, f: false, r: 1.5, b: null });
  const before = state(a);
  deliver(a, write(SITE.d, SENTINEL, 2, null));
  assert.equal(a.dump().rows[0]?.[2], 3);
  assert.deepEqual(a.get(kv, { k: 'k1' })?.n, 42);
  assert.notEqual(state(a), before, 'the stale version is still recorded as known');
  assert.deepEqual(a.known()[SITE.d], [[1, 1]]);
  assert.equal(a.dump().versions.some((row) => row[0] === SITE.d), false, 'a version without surviving changes keeps no record');
});

test('applying the same changesets in any order, any number of times, gives the same state', () => {
  const [a, b] = pair();
  const c = dir.open({ siteId: SITE.c });
  pull(c, a);
  const all: Changeset[] = [...a.changesFor(SITE.a, 1, 1)];
  const record = (cs: Changeset | undefined) => cs && all.push(cs);
  record(a.transact((tx) => tx.upsert(kv, { k: 'k1', a: 'from-a', n: 10 })));
  record(b.transact((tx) => tx.upsert(kv, { k: 'k1', a: 'from-b' })));
  record(b.transact((tx) => tx.upsert(kv, { k: 'k2', f: true, b: new Uint8Array([1, 2]) })));
  record(c.transact((tx) => tx.delete(kv, { k: 'k1' })));
  record(c.transact((tx) => tx.upsert(kv, { k: 'k2', n: -3, r: 0.25 })));
  record(a.transact((tx) => tx.upsert(kv, { k: 'k3', a: 'x' })));
  const orders = [all, [...all].reverse(), [all[3]!, all[0]!, all[5]!, all[1]!, all[4]!, all[2]!, all[6]!]];
  const results = orders.map((order) => {
    const store = dir.open();
    deliver(store, ...order);
    const once = state(store);
    const again = store.apply([...order].reverse());
    assert.equal(again.duplicate, order.length);
    assert.equal(state(store), once, 'a second delivery changes nothing');
    return once;
  });
  assert.equal(results[1], results[0]);
  assert.equal(results[2], results[0]);
});

test('a write of the current value is no change and uses no version', () => {
  const [a] = pair();
  const version = a.health().dbVersion;
  assert.equal(a.transact((tx) => tx.upsert(kv, { k: 'k1', a: 'base', n: 1 })), undefined);
  assert.equal(a.transact((tx) => tx.delete(kv, { k: 'missing' })), undefined);
  assert.equal(a.transact(() => undefined), undefined);
  assert.equal(a.health().dbVersion, version);
  const next = a.transact((tx) => tx.upsert(kv, { k: 'k1', a: 'base', n: 2 }));
  assert.deepEqual(next?.changes.map((change) => [change.cid, change.col_version, change.val]), [['n', 2, 2]]);
  assert.equal(next?.db_version, version + 1);
});

test('a transaction that throws changes nothing and leaves no version gap', () => {
  const [a] = pair();
  assert.throws(() => a.transact((tx) => {
    tx.upsert(kv, { k: 'k1', n: 50 });
    throw new Error('boom');
  }), /boom/);
  assert.equal(a.get(kv, { k: 'k1' })?.n, 1);
  const next = a.transact((tx) => tx.upsert(kv, { k: 'k1', n: 51 }));
  assert.equal(next?.db_version, 2);
  assert.deepEqual(a.heads(), { [SITE.a]: 2 });
  assert.deepEqual(a.gaps(), {});
});

test('several writes of one row in a transaction leave one change per column', () => {
  const a = dir.open({ siteId: SITE.a });
  const cs = a.transact((tx) => {
    tx.upsert(kv, { k: 'k1', n: 1 });
    tx.upsert(kv, { k: 'k1', n: 2 });
    assert.equal(tx.get(kv, { k: 'k1' })?.n, 2);
    tx.delete(kv, { k: 'k1' });
    tx.upsert(kv, { k: 'k1', a: 'again' });
  });
  assert.ok(cs);
  assert.deepEqual(new Set(cs.changes.map((change) => change.cid)).size, cs.changes.length);
  assert.equal(cs.changes.every((change) => change.cl === 3), true);
  assert.equal(cs.last_seq, Math.max(...cs.changes.map((change) => change.seq)));
  const b = dir.open();
  deliver(b, cs);
  assert.deepEqual(b.get(kv, { k: 'k1' }), a.get(kv, { k: 'k1' }));
});

test('composite keys', () => {
  const a = dir.open();
  const b = dir.open();
  deliver(b, a.transact((tx) => {
    tx.upsert(pairs, { owner: 'p', slot: 1, note: 'one' });
    tx.upsert(pairs, { owner: 'p', slot: 2, note: 'two' });
  }));
  deliver(b, a.transact((tx) => tx.delete(pairs, { owner: 'p', slot: 1 })));
  assert.deepEqual(b.all(pairs), [{ owner: 'p', slot: 2, note: 'two' }]);
  assert.equal(b.get(pairs, { owner: 'p', slot: 1 }), undefined);
});

test('local writes reject unknown tables and columns, missing keys and wrong types', () => {
  const a = dir.open();
  const bad: [() => void, RegExp][] = [
    [() => a.transact((tx) => tx.upsert(kv, { k: 'x', nope: 1 } as never)), /unknown column nope/],
    [() => a.transact((tx) => tx.upsert(kv, { n: 1 } as never)), /kv\.k/],
    [() => a.transact((tx) => tx.upsert(kv, { k: 'x', n: 1.5 })), /kv\.n is not a safe integer/],
    [() => a.transact((tx) => tx.upsert(kv, { k: 'x', n: null } as never)), /kv\.n is null/],
    [() => a.transact((tx) => tx.upsert(kv, { k: 'x', f: 1 } as never)), /kv\.f is not a boolean/],
    [() => a.transact((tx) => tx.upsert(kv, { k: 'x', r: Number.NaN })), /kv\.r/],
    [() => a.transact((tx) => tx.upsert(kv, { k: '\ud800' })), /well-formed/],
    [() => a.transact((tx) => tx.upsert({ ...kv, name: 'other' }, { k: 'x' })), /unknown table other/],
  ];
  for (const [write, message] of bad) assert.throws(write, (error: { code?: string; message: string }) => error.code === 'ERR_STORE_WRITE' && message.test(error.message));
  assert.deepEqual(a.all(kv), []);
  assert.equal(a.health().dbVersion, 0);
});

test('transact cannot nest and a transaction handle dies with its transaction', () => {
  const a = dir.open();
  let leaked: Parameters<Parameters<CrdtStore['transact']>[0]>[0] | undefined;
  assert.throws(() => a.transact(() => a.transact(() => undefined)), { code: 'ERR_STORE_BUSY' });
  assert.throws(() => a.transact(() => a.apply([])), { code: 'ERR_STORE_BUSY' });
  a.transact((tx) => {
    leaked = tx;
  });
  assert.throws(() => leaked!.upsert(kv, { k: 'late' }), { code: 'ERR_STORE_WRITE' });
  assert.equal(a.transact((tx) => tx.upsert(kv, { k: 'ok' }))?.db_version, 1);
});

test('re-served changes keep their original site, version, seq and col_version', () => {
  const a = dir.open({ siteId: SITE.a });
  const relay = dir.open({ siteId: SITE.b });
  const last = dir.open({ siteId: SITE.c });
  const original = [
    a.transact((tx) => tx.upsert(kv, { k: 'k1', a: 'one', b: new Uint8Array([9]) }))!,
    a.transact((tx) => tx.upsert(kv, { k: 'k2', n: 7 }))!,
  ];
  deliver(relay, ...original);
  const served = [...relay.changesFor(SITE.a, 1, 2, { maxChanges: 100 })];
  assert.deepEqual(served, original);
  pull(last, relay);
  assert.deepEqual(last.dump().clock, a.dump().clock);
  assert.deepEqual(last.heads(), { [SITE.a]: 2 });
});
