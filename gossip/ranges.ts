/** An inclusive range of versions `[from, to]`, from <= to. */
export type Range = readonly [number, number];

/** Sorts and merges overlapping or adjacent ranges. */
export function normalize(ranges: readonly Range[]): Range[] {
  const sorted = [...ranges].filter(([from, to]) => from <= to).sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [from, to] of sorted) {
    const last = merged[merged.length - 1];
    if (last && from <= last[1] + 1) last[1] = Math.max(last[1], to);
    else merged.push([from, to]);
  }
  return merged;
}

/** The versions in `have` that are not in `minus`. Both inputs may be unsorted. */
export function subtract(have: readonly Range[], minus: readonly Range[]): Range[] {
  const result: Range[] = [];
  const holes = normalize(minus);
  for (const [from, to] of normalize(have)) {
    let start = from;
    for (const [holeFrom, holeTo] of holes) {
      if (holeTo < start) continue;
      if (holeFrom > to) break;
      if (holeFrom > start) result.push([start, holeFrom - 1]);
      start = Math.max(start, holeTo + 1);
      if (start > to) break;
    }
    if (start <= to) result.push([start, to]);
  }
  return result;
}

/** Splits ranges so none covers more than `size` versions. */
export function chunk(ranges: readonly Range[], size: number): Range[] {
  const chunks: Range[] = [];
  for (const [from, to] of ranges) for (let start = from; start <= to; start += size) chunks.push([start, Math.min(to, start + size - 1)]);
  return chunks;
}

/** Total number of versions covered. */
export function count(ranges: readonly Range[]): number {
  return normalize(ranges).reduce((sum, [from, to]) => sum + to - from + 1, 0);
}
