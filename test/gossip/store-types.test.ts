import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defineTable, openStore } from '../../gossip/index.ts';
import type { KeyOf, RowOf } from '../../gossip/index.ts';

const sprites = defineTable({
  name: 'sprites',
  primaryKey: ['name'],
  columns: { name: 'text', owner: 'text', epoch: 'integer', up: 'boolean', url: { type: 'text', nullable: true }, disk: { type: 'blob', nullable: true } },
});

// Compile-time checks (tsc runs over tests): rows and keys take the declared column types.
const row: RowOf<typeof sprites> = { name: 'a', owner: 'p', epoch: 1, up: true, url: null, disk: null };
const key: KeyOf<typeof sprites> = { name: 'a' };
// @ts-expect-error epoch is an integer column
const wrongType: RowOf<typeof sprites> = { ...row, epoch: '1' };
// @ts-expect-error owner is not nullable
const wrongNull: RowOf<typeof sprites> = { ...row, owner: null };
// @ts-expect-error the key is `name` only
const wrongKey: KeyOf<typeof sprites> = { owner: 'p' };

test('typed rows round-trip through a store', () => {
  const store = openStore({ path: ':memory:', tables: [sprites] });
  try {
    store.transact((tx) => {
      tx.upsert(sprites, row);
      // @ts-expect-error upsert needs the key
      assert.throws(() => tx.upsert(sprites, { owner: 'q' }), { code: 'ERR_STORE_WRITE' });
    });
    const read = store.get(sprites, key);
    const epoch: number | undefined = read?.epoch;
    const url: string | null | undefined = read?.url;
    assert.deepEqual(read, row);
    assert.equal(epoch, 1);
    assert.equal(url, null);
    assert.deepEqual([wrongType.name, wrongNull.name, (wrongKey as Record<string, unknown>).owner], ['a', 'a', 'p']);
  } finally {
    store.close();
  }
});
