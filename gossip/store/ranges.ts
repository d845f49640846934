/** An inclusive range of versions. */
export type Range = [number, number];

/** Sorts ranges and merges overlapping or adjacent ones. */
export function normalizeRanges(ranges: readonly (readonly [number, number])[]): Range[] {
  const sorted = ranges.map(([lo, hi]): Range => [lo, hi]).sort((a, b) => a[0] - b[0]);
  const out: Range[] = [];
  for (const range of sorted) {
    const last = out.at(-1);
    if (last && range[0] <= last[1] + 1) last[1] = Math.max(last[1], range[1]);
    else out.push(range);
  }
  return out;
}

/** The parts of `from` not covered by `minus`; both sorted and disjoint. */
export function subtractRanges(from: readonly Range[], minus: readonly Range[]): Range[] {
  const out: Range[] = [];
  let j = 0;
  for (const [lo, hi] of from) {
    let start = lo;
    while (j < minus.length && minus[j]![1] < start) j += 1;
    let k = j;
    while (start <= hi && k < minus.length && minus[k]![0] <= hi) {
      const [mlo, mhi] = minus[k]!;
      if (mlo > start) out.push([start, mlo - 1]);
      start = Math.max(start, mhi + 1);
      k += 1;
    }
    if (start <= hi) out.push([start, hi]);
  }
  return out;
}

/** The holes between 1 and the highest covered version. */
export function gapsOf(known: readonly Range[]): Range[] {
  const top = known.at(-1);
  return top ? subtractRanges([[1, top[1]]], known) : [];
}

/**
 * The versions a peer has and we lack, per site: its known set is 1..head for each head plus any
 * ranges it lists; ours comes from `knownOf`. Untrusted input: malformed sites, versions and ranges
 * are skipped, and at most `maxEntries` sites and ranges per site are read.
 */
export function missingRanges(theirHeads: unknown, theirKnown: unknown, knownOf: (site: string) => Range[], isSite: (site: string) => boolean, maxEntries: number): Record<string, Range[]> {
  const theirs = new Map<string, Range[]>();
  const add = (site: string, range: Range): void => {
    const list = theirs.get(site) ?? [];
    if (list.length < maxEntries) list.push(range);
    theirs.set(site, list);
  };
  for (const [site, head] of entries(theirHeads, maxEntries)) {
    if (isSite(site) && isVersion(head)) add(site, [1, head]);
  }
  for (const [site, ranges] of entries(theirKnown, maxEntries)) {
    if (!isSite(site) || !Array.isArray(ranges)) continue;
    for (const range of ranges.slice(0, maxEntries) as unknown[]) {
      if (Array.isArray(range) && isVersion(range[0]) && isVersion(range[1]) && range[0] <= range[1]) add(site, [range[0], range[1]]);
    }
  }
  const out: Record<string, Range[]> = {};
  for (const [site, ranges] of theirs) {
    const missing = subtractRanges(normalizeRanges(ranges), knownOf(site));
    if (missing.length > 0) out[site] = missing;
  }
  return out;
}

function isVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

function entries(value: unknown, max: number): [string, unknown][] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  return Object.entries(value).slice(0, max);
}
