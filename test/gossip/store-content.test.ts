import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { defineTable, withRules } from '../../gossip/index.ts';
import type { ValueCheck } from '../../gossip/index.ts';
import { pull, SITE, storeDir } from './helpers.ts';

/**
 * Content rules (`withRules`): a remote row with a value its column's rule refuses is not merged,
 * not served onward, counted and logged once per site and column; the rest of its version is.
 */

const dir = storeDir('gossip-content');
after(() => dir.cleanup());

const files = defineTable({ name: 'files', primaryKey: ['name'], columns: { name: 'text', path: 'text', size: 'integer', note: { type: 'text', nullable: true } } });
const safeName: ValueCheck = (value) => (typeof value === 'string' && /^[a-z]+$/.test(value) ? undefined : 'is not a-z');
const safePath: ValueCheck = (value) => (typeof value === 'string' && !value.includes('..') ? undefined : 'climbs out');
const throwing: ValueCheck = () => {
  throw new Error('boom');
};
const checked = withRules(files, { name: safeName, path: safePath, note: throwing });

function logger() {
  const lines: { message: string; fields?: Record<string, unknown> }[] = [];
  return { lines, warn: (message: string, fields?: Record<string, unknown>) => lines.push({ message, fields }) };
}

test('withRules refuses a rule for a column the table does not declare', () => {
  assert.throws(() => withRules(files, { nope: safeName }), /undeclared column nope/);
});

test('a remote row with a refused value is dropped whole; the valid rows of the version merge', () => {
  const writer = dir.open({ siteId: SITE.a, tables: [files] });
  const cs = writer.transact((tx) => {
    tx.upsert(files, { name: 'good', path: 'a/b', size: 1 });
    tx.upsert(files, { name: 'evil', path: '../../etc/passwd', size: 2 });
    tx.upsert(files, { name: '../x', path: 'c', size: 3 });
  })!;
  const log = logger();
  const reader = dir.open({ siteId: SITE.b, tables: [checked], logger: log });
  const result = reader.apply([cs]);
  assert.equal(result.applied, 1);
  assert.equal(result.rejected, 0);
  assert.equal(result.dropped, 2);
  assert.deepEqual(reader.all(files).map((row) => row.name), ['good']);
  assert.deepEqual(reader.health().droppedRows, { files: 2 });
  // The version counts as received: not asked for again.
  assert.deepEqual(reader.needs(writer.heads(), writer.known()), {});
  assert.equal(log.lines.length, 2);
  assert.match(JSON.stringify(log.lines), /climbs out/);

  // What was dropped is not served: a third store pulling from the reader gets only the good row.
  const third = dir.open({ siteId: SITE.c, tables: [files] });
  pull(third, reader);
  assert.deepEqual(third.all(files).map((row) => row.name), ['good']);
  assert.deepEqual(third.needs(writer.heads(), writer.known()), {}, 'the version is known as served (partly cleared)');

  // The same refusal again is counted, not logged again.
  const again = writer.transact((tx) => tx.upsert(files, { name: 'evil', path: '../../root', size: 3 }))!;
  assert.equal(reader.apply([again]).dropped, 1);
  assert.equal(log.lines.length, 2);
  assert.deepEqual(reader.health().droppedRows, { files: 3 });
});

test('a refused update leaves the stored row as it was; a rule that throws refuses', () => {
  const writer = dir.open({ siteId: SITE.a, tables: [files] });
  const first = writer.transact((tx) => tx.upsert(files, { name: 'doc', path: 'x', size: 1 }))!;
  const bad = writer.transact((tx) => tx.upsert(files, { name: 'doc', path: '../y', size: 2 }))!;
  const noted = writer.transact((tx) => tx.upsert(files, { name: 'doc', note: 'hi' }))!;
  const reader = dir.open({ siteId: SITE.b, tables: [checked], logger: logger() });
  reader.apply([first, bad, noted]);
  assert.deepEqual(reader.get(files, { name: 'doc' }), { name: 'doc', path: 'x', size: 1, note: null });
  assert.deepEqual(reader.health().droppedRows, { files: 2 });
});

test('local writes are not screened: rules guard what arrives', () => {
  const local = dir.open({ siteId: SITE.d, tables: [checked] });
  local.transact((tx) => tx.upsert(files, { name: 'mine', path: '../mine', size: 1 }));
  assert.equal(local.get(files, { name: 'mine' })?.path, '../mine');
});
