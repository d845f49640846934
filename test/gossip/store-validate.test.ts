import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { schemaIndex, STORE_ERROR_CODES, validateChangeset, VALIDATION_DEFAULTS } from '../../gossip/index.ts';
import type { Change, Changeset, RejectCode } from '../../gossip/index.ts';
import { kv, pairs, SITE, state, storeDir } from './helpers.ts';

const dir = storeDir('gossip-validate');
after(() => dir.cleanup());

const TS = 99n << 16n;

function change(overrides: Partial<Change> & Record<string, unknown> = {}): Change {
  return { table: 'kv', pk: ['x'], cid: 'n', val: 1, col_version: 1, db_version: 4, seq: 0, site_id: SITE.a, cl: 1, ts: TS, ...overrides } as Change;
}

/** A valid changeset: a sentinel and one column write of row x, then `overrides`. */
function base(overrides: Partial<Changeset> & Record<string, unknown> = {}, changes?: Change[]): Changeset {
  return {
    site_id: SITE.a, db_version: 4, last_seq: 1, seqs: [0, 1], ts: TS,
    changes: changes ?? [change({ cid: '-1', val: null, seq: 0 }), change({ seq: 1 })],
    ...overrides,
  } as Changeset;
}

const big = 'x'.repeat(VALIDATION_DEFAULTS.maxValueBytes + 1);

const INVALID: [string, unknown, RejectCode][] = [
  ['not an object', 5, 'ERR_CHANGESET_SHAPE'],
  ['an array', [], 'ERR_CHANGESET_SHAPE'],
  ['short site id', base({ site_id: 'abc' }), 'ERR_CHANGESET_SITE'],
  ['uppercase site id', base({ site_id: 'A'.repeat(32) }), 'ERR_CHANGESET_SITE'],
  ['version 0', base({ db_version: 0 }), 'ERR_CHANGESET_VERSION'],
  ['negative version', base({ db_version: -3 }), 'ERR_CHANGESET_VERSION'],
  ['fractional version', base({ db_version: 1.5 }), 'ERR_CHANGESET_VERSION'],
  ['string version', base({ db_version: '4' as never }), 'ERR_CHANGESET_VERSION'],
  ['huge version', base({ db_version: 2 ** 60 }), 'ERR_CHANGESET_VERSION'],
  ['negative last_seq', base({ last_seq: -1 }), 'ERR_CHANGESET_SEQ'],
  ['absurd last_seq', base({ last_seq: VALIDATION_DEFAULTS.maxLastSeq + 1, seqs: [0, 1] }), 'ERR_CHANGESET_SEQ'],
  ['inverted seqs', base({ seqs: [1, 0] }), 'ERR_CHANGESET_SEQ'],
  ['seqs past last_seq', base({ seqs: [0, 2] }), 'ERR_CHANGESET_SEQ'],
  ['seqs not a pair', base({ seqs: [0] as never }), 'ERR_CHANGESET_SHAPE'],
  ['number ts', base({ ts: 5 as never }), 'ERR_CHANGESET_SHAPE'],
  ['negative ts', base({ ts: -1n }), 'ERR_CHANGESET_SHAPE'],
  ['ts over 2^63', base({ ts: 1n << 63n }), 'ERR_CHANGESET_SHAPE'],
  ['changes not an array', base({ changes: {} as never }), 'ERR_CHANGESET_SHAPE'],
  ['too many changes', base({ last_seq: 5000, seqs: [0, 5000] }, Array.from({ length: 5000 }, (_, seq) => change({ seq }))), 'ERR_CHANGESET_TOO_LARGE'],
  ['change not an object', base({}, [null as never]), 'ERR_CHANGESET_SHAPE'],
  ['unknown table', base({}, [change({ table: 'nope' })]), 'ERR_CHANGESET_TABLE'],
  ['unknown column', base({}, [change({ cid: 'zz' })]), 'ERR_CHANGESET_COLUMN'],
  ['key column as cid', base({}, [change({ cid: 'k', val: 'y' })]), 'ERR_CHANGESET_COLUMN'],
  ['text in an integer column', base({}, [change({ val: 'one' })]), 'ERR_CHANGESET_VALUE'],
  ['fraction in an integer column', base({}, [change({ val: 1.5 })]), 'ERR_CHANGESET_VALUE'],
  ['unsafe integer', base({}, [change({ val: 2 ** 60 })]), 'ERR_CHANGESET_VALUE'],
  ['bigint value', base({}, [change({ val: 5n as never })]), 'ERR_CHANGESET_VALUE'],
  ['null in a non-nullable column', base({}, [change({ val: null })]), 'ERR_CHANGESET_VALUE'],
  ['boolean not 0/1', base({}, [change({ cid: 'f', val: 2 })]), 'ERR_CHANGESET_VALUE'],
  ['JS boolean', base({}, [change({ cid: 'f', val: true as never })]), 'ERR_CHANGESET_VALUE'],
  ['infinite real', base({}, [change({ cid: 'r', val: Number.POSITIVE_INFINITY })]), 'ERR_CHANGESET_VALUE'],
  ['string as blob', base({}, [change({ cid: 'b', val: 'bytes' })]), 'ERR_CHANGESET_VALUE'],
  ['lone surrogate', base({}, [change({ cid: 'a', val: '\udc00' })]), 'ERR_CHANGESET_VALUE'],
  ['value over the size cap', base({}, [change({ cid: 'a', val: big })]), 'ERR_CHANGESET_TOO_LARGE'],
  ['empty key', base({}, [change({ pk: [] })]), 'ERR_CHANGESET_PK'],
  ['key too long', base({}, [change({ pk: ['x', 'y'] })]), 'ERR_CHANGESET_PK'],
  ['key of the wrong type', base({}, [change({ pk: [5] })]), 'ERR_CHANGESET_PK'],
  ['composite key of the wrong type', base({}, [change({ table: 'pairs', pk: ['o', 'one'], cid: 'note', val: 'n' })]), 'ERR_CHANGESET_PK'],
  ['key not an array', base({}, [change({ pk: 'x' as never })]), 'ERR_CHANGESET_PK'],
  ['causal length 0', base({}, [change({ cl: 0 })]), 'ERR_CHANGESET_CLOCK'],
  ['column write at an even causal length', base({}, [change({ cl: 2 })]), 'ERR_CHANGESET_CLOCK'],
  ['col_version 0', base({}, [change({ col_version: 0 })]), 'ERR_CHANGESET_CLOCK'],
  ['sentinel with a value', base({}, [change({ cid: '-1', val: 1, col_version: 1 })]), 'ERR_CHANGESET_CLOCK'],
  ['sentinel col_version other than cl', base({}, [change({ cid: '-1', val: null, cl: 2, col_version: 1 })]), 'ERR_CHANGESET_CLOCK'],
  ['change of another site', base({}, [change({ site_id: SITE.b })]), 'ERR_CHANGESET_MISMATCH'],
  ['change of another version', base({}, [change({ db_version: 5 })]), 'ERR_CHANGESET_MISMATCH'],
  ['change with another ts', base({}, [change({ ts: TS + 1n })]), 'ERR_CHANGESET_MISMATCH'],
  ['change seq outside the chunk', base({ last_seq: 3, seqs: [0, 1] }, [change({ seq: 2 })]), 'ERR_CHANGESET_SEQ'],
  ['repeated seq', base({}, [change({ seq: 1 }), change({ seq: 1, cid: 'a', val: 'z' })]), 'ERR_CHANGESET_SEQ'],
  ['inverted cleared range', base({ changes: [], last_seq: 0, seqs: [0, 0], cleared_to: 3 }), 'ERR_CHANGESET_VERSION'],
  ['cleared range with changes', base({ last_seq: 0, seqs: [0, 0], cleared_to: 9 }, [change({ seq: 0 })]), 'ERR_CHANGESET_SHAPE'],
];

test('every invalid changeset is rejected with its code, counted, and leaves the store as it was', () => {
  const store = dir.open();
  store.transact((tx) => tx.upsert(kv, { k: 'x', a: 'mine' }));
  const before = state(store);
  const schema = schemaIndex([kv, pairs]);
  for (const [name, input, code] of INVALID) {
    const verdict = validateChangeset(input, schema);
    assert.equal(verdict.ok ? 'ok' : verdict.code, code, name);
    const result = store.apply([input]);
    assert.equal(result.rejected, 1, name);
    assert.equal(result.rejections[0]?.code, code, name);
    assert.equal(result.rejections[0]?.index, 0);
    assert.ok(result.rejections[0]!.message.length > 0);
  }
  assert.equal(state(store), before);
  const health = store.health();
  assert.equal(health.rejected, INVALID.length);
  assert.equal(Object.values(health.rejectedByCode).reduce((sum, count) => sum + count, 0), INVALID.length);
  assert.equal(health.rejectedByCode.ERR_CHANGESET_VALUE, INVALID.filter(([, , code]) => code === 'ERR_CHANGESET_VALUE').length);
});

test('the valid base changeset applies, and one bad change spoils only its own changeset', () => {
  const store = dir.open();
  assert.equal(validateChangeset(base(), schemaIndex([kv])).ok, true);
  const spoiled = base({ db_version: 5, last_seq: 2, seqs: [0, 2] }, [
    change({ db_version: 5, cid: '-1', val: null, seq: 0, pk: ['y'] }),
    change({ db_version: 5, seq: 1, pk: ['y'] }),
    change({ db_version: 5, seq: 2, pk: ['y'], cid: 'nope' }),
  ]);
  const result = store.apply([spoiled, base(), 'junk']);
  assert.deepEqual([result.applied, result.rejected], [1, 2]);
  assert.deepEqual(result.rejections.map((rejection) => rejection.index), [0, 2]);
  assert.deepEqual(store.all(kv).map((row) => row.k), ['x']);
  assert.deepEqual(store.heads(), { [SITE.a]: 0 });
  assert.deepEqual(store.known(), { [SITE.a]: [[4, 4]] });
  // Normalization: unknown fields go, -0 becomes 0, blobs are copied.
  const blob = new Uint8Array([1]);
  const verdict = validateChangeset({ ...base({}, [change({ cid: 'r', val: -0, extra: 1 }), change({ seq: 1, cid: 'b', val: blob })]), junk: true }, schemaIndex([kv]));
  assert.ok(verdict.ok);
  assert.equal(Object.is(verdict.changeset.changes[0]?.val, 0), true);
  assert.equal('extra' in verdict.changeset.changes[0]!, false);
  assert.equal('junk' in verdict.changeset, false);
  blob[0] = 9;
  assert.deepEqual(verdict.changeset.changes[1]?.val, new Uint8Array([1]));
});

test('fuzz: random structures into apply are rejected without touching the store', () => {
  const store = dir.open();
  store.transact((tx) => tx.upsert(kv, { k: 'x', a: 'mine' }));
  const before = state(store);
  const anything = fc.anything({ withBigInt: true, withTypedArray: true, withMap: true, withNullPrototype: true });
  fc.assert(
    fc.property(fc.array(anything, { maxLength: 5 }), (list) => {
      const result = store.apply(list);
      assert.equal(result.rejected, list.length);
      assert.equal(state(store), before);
    }),
    { numRuns: 500 },
  );
});

test('fuzz: valid changesets with random fields replaced are rejected untouched exactly when invalid', () => {
  const store = dir.open();
  store.transact((tx) => tx.upsert(kv, { k: 'x', a: 'mine' }));
  const schema = schemaIndex([kv, pairs]);
  const field = fc.oneof(fc.anything({ withBigInt: true, withTypedArray: true }), fc.constantFrom(SITE.a, SITE.b, 'kv', 'pairs', '-1', 'n', 'a', 0, 1, 2, -1, 1.5, 2 ** 53, TS, 0n, null, [], ['x'], {}));
  const changeKeys = ['table', 'pk', 'cid', 'val', 'col_version', 'db_version', 'seq', 'site_id', 'cl', 'ts'] as const;
  const setKeys = ['site_id', 'db_version', 'last_seq', 'seqs', 'ts', 'changes', 'cleared_to'] as const;
  const mutation = fc.oneof(
    fc.tuple(fc.constant(-1), fc.constantFrom(...setKeys), field),
    fc.tuple(fc.integer({ min: 0, max: 1 }), fc.constantFrom(...changeKeys), field),
  );
  let rejected = 0;
  let accepted = 0;
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 50 }), fc.array(mutation, { minLength: 1, maxLength: 3 }), (version, mutations) => {
      const input = base({ db_version: version }, [change({ cid: '-1', val: null, seq: 0, db_version: version }), change({ seq: 1, db_version: version })]) as unknown as Record<string, unknown>;
      const changes = input.changes as Record<string, unknown>[];
      for (const [target, key, value] of mutations) {
        if (target === -1) input[key] = value;
        else changes[target]![key] = value;
      }
      const verdict = validateChangeset(input, schema);
      const before = state(store);
      const result = store.apply([input]);
      if (verdict.ok) {
        accepted += 1;
        assert.equal(result.rejected, 0);
      } else {
        rejected += 1;
        assert.equal(result.rejections[0]?.code, verdict.code);
        assert.equal(state(store), before);
      }
    }),
    { numRuns: 1500 },
  );
  assert.ok(rejected > 500 && accepted > 0, `rejected ${rejected}, accepted ${accepted}`);
});

test('every error code in gossip/store is documented in STORE_ERROR_CODES and every documented code is used', () => {
  const root = new URL('../../gossip/store/', import.meta.url).pathname;
  const files = readdirSync(root, { recursive: true }).map(String).filter((file) => file.endsWith('.ts') && !file.endsWith('errors.ts'));
  const used = new Set(files.flatMap((file) => [...readFileSync(join(root, file), 'utf8').matchAll(/'(ERR_[A-Z_]+)'/g)].map((match) => match[1]!)));
  for (const code of used) assert.ok(code in STORE_ERROR_CODES, `${code} is not documented`);
  for (const code of Object.keys(STORE_ERROR_CODES)) assert.ok(used.has(code), `${code} is never used`);
});
