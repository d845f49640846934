import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { chunk, count, normalize, subtract, type Range } from '../../gossip/ranges.ts';

const expand = (ranges: readonly (readonly [number, number])[]): Set<number> => {
  const set = new Set<number>();
  for (const [from, to] of ranges) for (let v = from; v <= to; v++) set.add(v);
  return set;
};
const rangeArb = fc.tuple(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 8 })).map(([from, len]): Range => [from, from + len]);

test('normalize merges overlapping and adjacent ranges', () => {
  assert.deepEqual(normalize([[5, 6], [1, 2], [3, 3], [8, 9], [9, 12]]), [[1, 3], [5, 6], [8, 12]]);
  assert.deepEqual(normalize([[4, 2]]), []);
});

test('subtract and count agree with set arithmetic', () => {
  fc.assert(fc.property(fc.array(rangeArb, { maxLength: 6 }), fc.array(rangeArb, { maxLength: 6 }), (have, minus) => {
    const expected = [...expand(have)].filter((v) => !expand(minus).has(v)).sort((a, b) => a - b);
    const got = subtract(have, minus);
    assert.deepEqual([...expand(got)].sort((a, b) => a - b), expected);
    assert.equal(count(got), expected.length);
    assert.deepEqual(normalize(got), got);
  }));
});

test('chunk bounds every range', () => {
  assert.deepEqual(chunk([[1, 5], [10, 10]], 2), [[1, 2], [3, 4], [5, 5], [10, 10]]);
});
