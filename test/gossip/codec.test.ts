import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { encode } from 'cbor-x';
import fc from 'fast-check';
import { chunkChangeset, decodeChangesets, encodeChangesets, StoreError } from '../../gossip/index.ts';
import type { Changeset } from '../../gossip/index.ts';
import { kv, SITE, state, storeDir } from './helpers.ts';

const dir = storeDir('gossip-codec');
after(() => dir.cleanup());

function sample(): Changeset[] {
  const a = dir.open({ siteId: SITE.a });
  const first = a.transact((tx) => {
    tx.upsert(kv, { k: 'x', a: 'héllo 😀', n: -42, f: true, r: 2.75, b: new Uint8Array([0, 255, 7]) });
    tx.upsert(kv, { k: 'y', a: null, n: Number.MAX_SAFE_INTEGER, b: null });
  })!;
  const second = a.transact((tx) => tx.delete(kv, { k: 'x' }))!;
  const cleared: Changeset = { site_id: SITE.b, db_version: 3, last_seq: 0, seqs: [0, 0], ts: 0n, changes: [], cleared_to: 9 };
  return [...chunkChangeset(first, 5), second, cleared];
}

function isTypedFailure(error: unknown): boolean {
  return error instanceof StoreError && (error.code === 'ERR_STORE_DECODE' || error.code === 'ERR_STORE_TOO_LARGE');
}

test('changesets survive an encode/decode round trip exactly', () => {
  const list = sample();
  const bytes = encodeChangesets(list);
  assert.ok(bytes instanceof Uint8Array);
  assert.deepEqual(decodeChangesets(bytes), list);
  assert.deepEqual(decodeChangesets(encodeChangesets([])), []);
  // Small timestamps travel as plain CBOR integers and still come back as bigint.
  const small = { ...list[0]!, ts: 7n, changes: list[0]!.changes.map((change) => ({ ...change, ts: 7n })) };
  assert.deepEqual(decodeChangesets(encodeChangesets([small])), [small]);
});

test('caps: too many bytes or changesets is a typed error on both sides', () => {
  const list = sample();
  assert.throws(() => encodeChangesets(list, { maxBytes: 20, maxChangesets: 100 }), { code: 'ERR_STORE_TOO_LARGE' });
  assert.throws(() => encodeChangesets(list, { maxBytes: 1 << 20, maxChangesets: 2 }), { code: 'ERR_STORE_TOO_LARGE' });
  const bytes = encodeChangesets(list);
  assert.throws(() => decodeChangesets(bytes, { maxBytes: bytes.byteLength - 1, maxChangesets: 100 }), { code: 'ERR_STORE_TOO_LARGE' });
  assert.throws(() => decodeChangesets(bytes, { maxBytes: 1 << 20, maxChangesets: 2 }), { code: 'ERR_STORE_TOO_LARGE' });
});

test('malformed messages are typed decode errors', () => {
  const cases: unknown[] = [
    new Uint8Array(),
    new Uint8Array([0xff]),
    new Uint8Array(200_000).fill(0x81), // 200k nested arrays
    encode(null),
    encode({ version: 1 }),
    encode([2, []]),
    encode([1, {}]),
    encode([1, [[SITE.a, 1, 0, 0, 0, 1, null]]]),
    encode([1, [[SITE.a, 1, 0, 0, 0, -1, null, []]]]),
    encode([1, [[SITE.a, 1.5, 0, 0, 0, 1, null, []]]]),
    encode([1, [[SITE.a, 1, 0, 0, 0, 1, null, [['kv', ['x'], 'n', { obj: 1 }, 1, 0, 1]]]]]),
    encode([1, [[SITE.a, 1, 0, 0, 0, 1, null, [['kv', 'x', 'n', 1, 1, 0, 1]]]]]),
    encode([1, [[SITE.a, 1, 0, 0, 0, 1, null, [['kv', ['x'], 'n', 1, 1, 0]]]]]),
    'not bytes',
  ];
  for (const bytes of cases) assert.throws(() => decodeChangesets(bytes as Uint8Array), isTypedFailure, String(bytes).slice(0, 40));
});

test('fuzz: random bytes never crash the decoder', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      try {
        assert.ok(Array.isArray(decodeChangesets(bytes)));
      } catch (error) {
        assert.ok(isTypedFailure(error), `untyped failure: ${String(error)}`);
      }
    }),
    { numRuns: 3000 },
  );
});

test('fuzz: random CBOR structures and mutated messages decode or fail typed, and apply never throws', () => {
  const valid = encodeChangesets(sample());
  const target = dir.open();
  const check = (bytes: Uint8Array): void => {
    let decoded: Changeset[];
    try {
      decoded = decodeChangesets(bytes);
    } catch (error) {
      assert.ok(isTypedFailure(error), `untyped failure: ${String(error)}`);
      return;
    }
    const before = state(target);
    const result = target.apply(decoded);
    assert.equal(result.applied + result.duplicate + result.buffered + result.rejected, decoded.length);
    if (result.applied + result.buffered === 0) assert.equal(state(target), before);
  };
  fc.assert(fc.property(fc.anything({ withBigInt: true, withTypedArray: true, withMap: true, withSet: true, withDate: true, withNullPrototype: true }), (value) => {
    check(encode([1, value]));
    check(encode(value));
  }), { numRuns: 500 });
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat({ max: valid.byteLength - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat({ max: valid.byteLength }), (flips, cut) => {
      const bytes = new Uint8Array(valid);
      for (const [at, value] of flips) bytes[at] = value;
      check(bytes);
      check(bytes.subarray(0, cut));
    }),
    { numRuns: 1000 },
  );
});
