import { normalizeRanges, subtractRanges, type Range } from './store/ranges.ts';

export type { Range };

/** Sorts and merges overlapping or adjacent ranges (ranges with from > to are dropped). */
export function normalize(ranges: readonly (readonly [number, number])[]): Range[] {
  return normalizeRanges(ranges.filter(([from, to]) => from <= to));
}

/** The versions in `have` that are not in `minus`; inputs may be unsorted and overlapping (they come from peers). */
export function subtract(have: readonly (readonly [number, number])[], minus: readonly (readonly [number, number])[]): Range[] {
  return subtractRanges(normalize(have), normalize(minus));
}

/** Splits ranges so none covers more than `size` versions. */
export function chunk(ranges: readonly Range[], size: number): Range[] {
  const chunks: Range[] = [];
  for (const [from, to] of ranges) for (let start = from; start <= to; start += size) chunks.push([start, Math.min(to, start + size - 1)]);
  return chunks;
}

/** Total number of versions covered. */
export function count(ranges: readonly (readonly [number, number])[]): number {
  return normalize(ranges).reduce((sum, [from, to]) => sum + to - from + 1, 0);
}
