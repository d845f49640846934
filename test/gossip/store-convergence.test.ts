import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { chunkChangeset } from '../../gossip/index.ts';
import type { Change, Changeset, CrdtStore, RowOf, SqlValue } from '../../gossip/index.ts';
import { kv, pull, SITE, state, storeDir } from './helpers.ts';

const dir = storeDir('gossip-converge');
after(() => dir.cleanup());

const SITES = [SITE.a, SITE.b, SITE.c, SITE.d, SITE.e];
const KEYS = ['k0', 'k1', 'k2'];

// ---- A reference model of the merge rules, written apart from the store. ----

/** Column defaults of `kv` in stored form, as the model reads them for columns without a write. */
const DEFAULTS: Record<string, SqlValue> = { a: null, n: 0, f: 0, r: 1.5, b: null };

function codePoints(text: string): number[] {
  return Array.from(text, (char) => char.codePointAt(0)!);
}

function lexical(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i += 1) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return Math.sign(a.length - b.length);
}

/** null < numbers < text in code point order (= UTF-8 byte order) < blobs bytewise. */
function modelCompare(a: SqlValue, b: SqlValue): number {
  const kind = (value: SqlValue) => (value === null ? 0 : typeof value === 'number' ? 1 : typeof value === 'string' ? 2 : 3);
  if (kind(a) !== kind(b)) return Math.sign(kind(a) - kind(b));
  if (typeof a === 'number' && typeof b === 'number') return Math.sign(a - b);
  if (typeof a === 'string' && typeof b === 'string') return lexical(codePoints(a), codePoints(b));
  if (a instanceof Uint8Array && b instanceof Uint8Array) return lexical([...a], [...b]);
  return 0;
}

function beats(x: Change, y: Change): boolean {
  const order = Math.sign(x.col_version - y.col_version) || modelCompare(x.val, y.val) || (x.site_id === y.site_id ? 0 : x.site_id > y.site_id ? 1 : -1) || Math.sign(x.db_version - y.db_version) || Math.sign(x.seq - y.seq);
  return order > 0;
}

/** The live rows the merge rules give for a set of changes: highest causal length, then the winning write per column. */
function model(changes: readonly Change[]): RowOf<typeof kv>[] {
  const rows = new Map<string, Change[]>();
  for (const change of changes) rows.set(change.pk[0] as string, [...(rows.get(change.pk[0] as string) ?? []), change]);
  const out: RowOf<typeof kv>[] = [];
  for (const [key, list] of [...rows].sort(([x], [y]) => (x < y ? -1 : 1))) {
    const cl = Math.max(...list.map((change) => change.cl));
    if (cl % 2 === 0) continue;
    const value = (cid: string): SqlValue => {
      let winner: Change | undefined;
      for (const change of list) if (change.cid === cid && change.cl === cl && (!winner || beats(change, winner))) winner = change;
      return winner ? winner.val : DEFAULTS[cid]!;
    };
    out.push({ k: key, a: value('a') as string | null, n: value('n') as number, f: value('f') === 1, r: value('r') as number, b: value('b') as Uint8Array | null });
  }
  return out;
}

/** The clock the merge rules give: the winning write of every column (and the sentinel) at each row's causal length. */
function modelClock(changes: readonly Change[]): unknown[][] {
  const plain = (value: SqlValue) => (value instanceof Uint8Array ? `x'${Buffer.from(value).toString('hex')}'` : value);
  const maxCl = new Map<string, number>();
  for (const change of changes) maxCl.set(change.pk[0] as string, Math.max(maxCl.get(change.pk[0] as string) ?? 0, change.cl));
  const winners = new Map<string, Change>();
  for (const change of changes) {
    if (change.cl !== maxCl.get(change.pk[0] as string)) continue;
    const id = `${change.pk[0] as string}/${change.cid}`;
    const current = winners.get(id);
    if (!current || beats(change, current)) winners.set(id, change);
  }
  return [...winners.values()]
    .map((w) => ['kv', JSON.stringify(w.pk), w.cid, w.cl, w.col_version, plain(w.val), w.site_id, w.db_version, w.seq])
    .sort((x, y) => (`${x[1]}/${x[2]}` < `${y[1]}/${y[2]}` ? -1 : 1));
}

// ---- Random histories. ----

type Op =
  | { kind: 'write'; replica: number; key: number; cols: Partial<Omit<RowOf<typeof kv>, 'k'>> }
  | { kind: 'delete'; replica: number; key: number }
  | { kind: 'deliver'; from: number; pick: number; to: number; chunk: number; lose: number; duplicate: boolean; reverse: boolean }
  | { kind: 'relay'; from: number; to: number; site: number; version: number; lose: number };

const columns = fc.record(
  {
    a: fc.constantFrom(null, 'x', 'y', 'é', '😀', '\uffff'),
    n: fc.constantFrom(-1, 0, 1, 2),
    f: fc.boolean(),
    r: fc.constantFrom(-2, 0.5, 1.5),
    b: fc.constantFrom(null, new Uint8Array([1]), new Uint8Array([1, 0]), new Uint8Array([2])),
  },
  { requiredKeys: [] },
);
const replica = fc.nat({ max: 4 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), replica, key: fc.nat({ max: KEYS.length - 1 }), cols: columns }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), replica, key: fc.nat({ max: KEYS.length - 1 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('deliver' as const), from: replica, pick: fc.nat(), to: replica, chunk: fc.nat({ max: 4 }), lose: fc.nat({ max: 15 }), duplicate: fc.boolean(), reverse: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('relay' as const), from: replica, to: replica, site: fc.nat({ max: 4 }), version: fc.nat({ max: 8 }), lose: fc.nat({ max: 7 }) }) },
);

function run(count: number, ops: readonly Op[], tightBuffers: boolean): void {
  const stores: CrdtStore[] = SITES.slice(0, count).map((siteId, i) =>
    dir.open({ siteId, limits: tightBuffers && i % 2 === 0 ? { maxPartialVersionsPerSite: 1, maxPartialVersions: 2, maxBufferedChanges: 8 } : {} }),
  );
  const produced: Changeset[][] = stores.map(() => []);
  const at = (index: number) => index % count;
  try {
    for (const step of ops) {
      if (step.kind === 'write' || step.kind === 'delete') {
        const store = stores[at(step.replica)]!;
        const key = KEYS[step.key]!;
        const cs = store.transact((tx) => (step.kind === 'write' ? tx.upsert(kv, { k: key, ...step.cols }) : tx.delete(kv, { k: key })));
        if (cs) produced[at(step.replica)]!.push(cs);
      } else if (step.kind === 'deliver') {
        const mine = produced[at(step.from)]!;
        if (mine.length === 0) continue;
        const cs = mine[step.pick % mine.length]!;
        const chunks = step.chunk === 0 ? [cs] : chunkChangeset(cs, step.chunk);
        const sent = chunks.filter((_, i) => (step.lose & (1 << i)) === 0);
        if (step.reverse) sent.reverse();
        const target = stores[at(step.to)]!;
        for (const chunk of sent) {
          assert.equal(target.apply(step.duplicate ? [chunk, chunk] : [chunk]).rejected, 0);
        }
      } else {
        const site = SITES[at(step.site)]!;
        const served = [...stores[at(step.from)]!.changesFor(site, step.version + 1, step.version + 3, { maxChanges: 2 })];
        const sent = served.filter((_, i) => (step.lose & (1 << i)) === 0);
        assert.equal(stores[at(step.to)]!.apply(sent).rejected, 0);
      }
    }
    // Anti-entropy with heads / needs / changesFor / apply only, until nothing moves.
    for (let round = 0; ; round += 1) {
      assert.ok(round < 5, 'anti-entropy settles');
      let applied = 0;
      for (const to of stores) {
        for (const from of stores) {
          if (to === from) continue;
          const result = pull(to, from);
          assert.equal(result.rejected, 0);
          applied += result.applied;
        }
      }
      if (applied === 0) break;
    }
    const all = produced.flat().flatMap((cs) => cs.changes);
    const expected = model(all);
    assert.deepEqual(stores[0]!.dump().clock, modelClock(all), 'the clock holds the winning writes');
    const first = state(stores[0]!);
    for (const store of stores) {
      assert.equal(state(store), first, 'replicas are identical');
      assert.deepEqual(store.all(kv), expected, 'and equal to the model');
      assert.deepEqual(store.gaps(), {});
      assert.equal(store.health().partialVersions, 0);
    }
    const heads = stores[0]!.heads();
    produced.forEach((list, i) => assert.equal(heads[SITES[i]!] ?? 0, list.length));
  } finally {
    for (const store of stores) store.close();
  }
}

test('replicas converge to the model under concurrent writes, reordering, duplication and loss', () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 5 }), fc.array(op, { minLength: 1, maxLength: 60 }), fc.boolean(), (count, ops, tight) => run(count, ops, tight)),
    { numRuns: 100 },
  );
});

test('convergence holds for a hand-picked history of delete, resurrect and racing writes', () => {
  run(3, [
    { kind: 'write', replica: 0, key: 0, cols: { a: 'x', n: 1 } },
    { kind: 'deliver', from: 0, pick: 0, to: 1, chunk: 0, lose: 0, duplicate: false, reverse: false },
    { kind: 'deliver', from: 0, pick: 0, to: 2, chunk: 2, lose: 0, duplicate: true, reverse: true },
    { kind: 'delete', replica: 1, key: 0 },
    { kind: 'write', replica: 2, key: 0, cols: { a: 'y' } },
    { kind: 'deliver', from: 1, pick: 0, to: 0, chunk: 0, lose: 0, duplicate: false, reverse: false },
    { kind: 'write', replica: 0, key: 0, cols: { n: 2 } },
    { kind: 'write', replica: 2, key: 0, cols: { a: 'é' } },
    { kind: 'relay', from: 0, to: 2, site: 1, version: 0, lose: 0 },
  ], false);
});
