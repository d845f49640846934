import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { chunkChangeset } from '../../gossip/index.ts';
import { changeSize } from '../../gossip/store/serve.ts';
import type { Changeset, CrdtStore } from '../../gossip/index.ts';
import { deliver, kv, pull, SITE, state, storeDir } from './helpers.ts';

const dir = storeDir('gossip-sync');
after(() => dir.cleanup());

/** A store of site a with `count` versions, each creating one row k<i>. */
function writer(count: number, site: string = SITE.a): { store: CrdtStore; versions: Changeset[] } {
  const store = dir.open({ siteId: site });
  const versions: Changeset[] = [];
  for (let i = 1; i <= count; i += 1) versions.push(store.transact((tx) => tx.upsert(kv, { k: `k${i}`, n: i }))!);
  return { store, versions };
}

/** One version creating `rows` new rows (6 changes each), named after the version. */
function bigVersion(store: CrdtStore, rows: number): Changeset {
  const tag = store.health().dbVersion + 1;
  return store.transact((tx) => {
    for (let i = 0; i < rows; i += 1) tx.upsert(kv, { k: `big${tag}.${i}`, n: i, a: `row ${i}` });
  })!;
}

test('chunks of a version are buffered and applied together once all seqs are covered', () => {
  const a = dir.open({ siteId: SITE.a });
  const cs = bigVersion(a, 4);
  const chunks = chunkChangeset(cs, 5);
  assert.equal(chunks.length, 5);
  assert.deepEqual(chunks.map((chunk) => chunk.seqs), [[0, 4], [5, 9], [10, 14], [15, 19], [20, 23]]);
  const b = dir.open();
  const empty = state(b);
  for (const chunk of [chunks[4]!, chunks[1]!, chunks[1]!, chunks[2]!, chunks[0]!]) {
    assert.deepEqual(b.apply([chunk]), { applied: 0, duplicate: 0, buffered: 1, rejected: 0, rejections: [], dropped: 0 });
  }
  assert.equal(state(b), empty, 'nothing visible before the version is complete');
  assert.equal(b.health().partialVersions, 1);
  assert.equal(b.health().bufferedChanges, 19);
  const events: string[] = [];
  b.subscribe(kv, (event) => events.push(event.pk.k));
  assert.equal(b.apply([chunks[3]!]).applied, 1);
  assert.equal(b.all(kv).length, 4);
  assert.deepEqual(events.sort(), ['big1.0', 'big1.1', 'big1.2', 'big1.3']);
  assert.equal(b.health().partialVersions, 0);
  assert.equal(b.health().bufferedChanges, 0);
  assert.equal(b.apply([chunks[2]!]).duplicate, 1);
  assert.equal(state(b).length > empty.length, true);
  assert.deepEqual(b.dump().clock, a.dump().clock);
});

test('partial versions are bounded: the oldest go over a cap and stay gaps until sync', () => {
  const { store: a, versions } = writer(0);
  for (let i = 0; i < 4; i += 1) versions.push(bigVersion(a, 2));
  const b = dir.open({ limits: { maxPartialVersionsPerSite: 2, maxPartialVersions: 10 } });
  for (const cs of versions) assert.equal(b.apply([chunkChangeset(cs, 3)[0]!]).buffered, 1);
  assert.equal(b.health().partialVersions, 2);
  assert.equal(b.health().droppedPartials, 2);
  // The survivors (versions 3 and 4) still complete; 1 and 2 are gaps now.
  for (const cs of versions.slice(2)) assert.equal(b.apply(chunkChangeset(cs, 3).slice(1)).applied, 1);
  assert.deepEqual(b.heads(), { [SITE.a]: 0 });
  assert.deepEqual(b.gaps(), { [SITE.a]: [[1, 2]] });
  assert.deepEqual(b.needs(a.heads()), { [SITE.a]: [[1, 2]] });
  pull(b, a);
  assert.deepEqual(b.heads(), { [SITE.a]: 4 });
  assert.deepEqual(b.gaps(), {});
  assert.deepEqual(b.dump().clock, a.dump().clock);

  const global = dir.open({ limits: { maxPartialVersions: 3, maxBufferedChanges: 1000 } });
  const c = writer(0, SITE.c).store;
  const others = [bigVersion(c, 2), bigVersion(c, 2)];
  for (const cs of [...versions, ...others]) global.apply([chunkChangeset(cs, 3)[0]!]);
  assert.equal(global.health().partialVersions, 3);
  assert.equal(global.health().droppedPartials, 3);

  const changes = dir.open({ limits: { maxBufferedChanges: 5 } });
  for (const cs of versions) changes.apply([chunkChangeset(cs, 3)[0]!]);
  assert.ok(changes.health().bufferedChanges <= 5);
  assert.equal(changes.health().partialVersions, 1);
});

test('a chunk contradicting buffered chunks is rejected; a whole version replaces its chunks', () => {
  const a = dir.open({ siteId: SITE.a });
  const cs = bigVersion(a, 2);
  const [first] = chunkChangeset(cs, 3);
  const b = dir.open();
  b.apply([first!]);
  const liar = { ...chunkChangeset(cs, 3)[1]!, last_seq: cs.last_seq + 1 };
  const result = b.apply([liar]);
  assert.equal(result.rejected, 1);
  assert.equal(result.rejections[0]?.code, 'ERR_CHANGESET_CONFLICT');
  assert.equal(b.apply([cs]).applied, 1);
  assert.equal(b.health().partialVersions, 0);
  assert.equal(b.health().rejectedByCode.ERR_CHANGESET_CONFLICT, 1);
});

test('heads, gaps, known and needs track versions exactly', () => {
  const { store: a, versions } = writer(6);
  const b = dir.open({ siteId: SITE.b });
  deliver(b, versions[0], versions[1], versions[3], versions[5]);
  assert.deepEqual(b.heads(), { [SITE.a]: 2 });
  assert.deepEqual(b.gaps(), { [SITE.a]: [[3, 3], [5, 5]] });
  assert.deepEqual(b.known(), { [SITE.a]: [[1, 2], [4, 4], [6, 6]] });
  assert.deepEqual(b.needs(a.heads()), { [SITE.a]: [[3, 3], [5, 5]] });
  assert.deepEqual(b.needs({ [SITE.a]: 3 }), { [SITE.a]: [[3, 3]] });
  // A peer whose head is low but that holds later versions still offers them through `known`.
  assert.deepEqual(b.needs({ [SITE.a]: 1 }, { [SITE.a]: [[1, 1], [5, 9]] }), { [SITE.a]: [[5, 5], [7, 9]] });
  assert.deepEqual(a.needs(b.heads(), b.known()), {});
  b.transact((tx) => tx.upsert(kv, { k: 'mine' }));
  assert.deepEqual(b.heads(), { [SITE.a]: 2, [SITE.b]: 1 });
  assert.deepEqual(a.needs(b.heads()), { [SITE.b]: [[1, 1]] });
  // Malformed peer state is ignored, not thrown.
  assert.deepEqual(b.needs({ nope: 5, [SITE.c]: -1, [SITE.d]: 1.5 } as never, { [SITE.c]: [[3, 1], 'x', [0, 2]] } as never), {});
  assert.deepEqual(b.needs(null as never, 7 as never), {});
});

test('changesFor serves superseded versions as cleared ranges so the requester closes its gaps', () => {
  const a = dir.open({ siteId: SITE.a });
  a.transact((tx) => tx.upsert(kv, { k: 'gone', n: 1 })); // 1: superseded by the delete in 3
  a.transact((tx) => tx.upsert(kv, { k: 'kept', n: 1, a: 'x' })); // 2: n superseded by 4, a survives
  a.transact((tx) => tx.delete(kv, { k: 'gone' })); // 3
  a.transact((tx) => tx.upsert(kv, { k: 'kept', n: 2 })); // 4
  a.transact((tx) => tx.upsert(kv, { k: 'tmp', n: 1 })); // 5: superseded by 6
  a.transact((tx) => tx.delete(kv, { k: 'tmp' })); // 6
  a.transact((tx) => tx.upsert(kv, { k: 'gone', n: 3 })); // 7: resurrect; supersedes 3's sentinel
  const served = [...a.changesFor(SITE.a, 1, 7, { maxChanges: 2 })];
  const summary = served.map((cs) => (cs.cleared_to !== undefined ? `cleared ${cs.db_version}-${cs.cleared_to}` : `v${cs.db_version} ${cs.seqs.join('-')}/${cs.last_seq} ${cs.changes.map((change) => change.cid).join(',')}`));
  assert.deepEqual(summary, [
    'cleared 1-1',
    'v2 0-1/5 -1,a',
    'v2 2-4/5 f,r',
    'v2 5-5/5 b',
    'cleared 3-3',
    'v4 0-0/0 n',
    'cleared 5-5',
    'v6 0-0/0 -1',
    'v7 0-1/5 -1,a',
    'v7 2-3/5 n,f',
    'v7 4-5/5 r,b',
  ]);
  // Version 2 lost its n write: its chunks still cover seqs 0..last_seq and skip seq 2.
  const v2 = served.filter((cs) => cs.db_version === 2 && cs.cleared_to === undefined);
  assert.equal(v2.length, 3);
  assert.deepEqual(v2.map((cs) => cs.seqs), [[0, 1], [2, 4], [5, 5]]);
  assert.equal(v2.flatMap((cs) => cs.changes).some((change) => change.cid === 'n'), false);
  assert.ok(served.every((cs) => cs.changes.length <= 2));
  const b = dir.open();
  for (const cs of served) assert.equal(b.apply([cs]).rejected, 0);
  assert.deepEqual(b.heads(), { [SITE.a]: 7 });
  assert.deepEqual(b.gaps(), {});
  assert.deepEqual(b.all(kv), a.all(kv));
  assert.deepEqual(b.dump().clock, a.dump().clock);
  assert.deepEqual(b.dump().versions, a.dump().versions);
  // Only known versions are served; an invalid request yields nothing.
  assert.deepEqual([...b.changesFor(SITE.a, 8, 100)], []);
  assert.deepEqual([...b.changesFor(SITE.c, 1, 100)], []);
  assert.deepEqual([...b.changesFor('bad', 1, 2)], []);
  assert.deepEqual([...b.changesFor(SITE.a, 3, 2)], []);
});

test('a cleared range closes gaps and drops buffered chunks of its versions', () => {
  const a = dir.open({ siteId: SITE.a });
  const big = bigVersion(a, 2);
  const b = dir.open();
  b.apply([chunkChangeset(big, 3)[0]!]);
  assert.equal(b.health().partialVersions, 1);
  const cleared: Changeset = { site_id: SITE.a, db_version: 1, last_seq: 0, seqs: [0, 0], ts: 0n, changes: [], cleared_to: 5 };
  assert.equal(b.apply([cleared]).applied, 1);
  assert.equal(b.health().partialVersions, 0);
  assert.deepEqual(b.heads(), { [SITE.a]: 5 });
  assert.equal(b.apply([cleared, { ...cleared, cleared_to: 3 }]).duplicate, 2);
  assert.equal(b.apply([big]).duplicate, 1);
  assert.deepEqual(b.all(kv), []);
});

test('versions of this very site that the file lacks are taken and the next local version follows them', () => {
  const a = dir.open({ siteId: SITE.a, file: 'restored-a.db' });
  const versions = [1, 2, 3].map((i) => a.transact((tx) => tx.upsert(kv, { k: `k${i}` }))!);
  const copy = dir.open({ siteId: SITE.e, file: 'copy.db' });
  deliver(copy, ...versions);
  const fresh = dir.open({ siteId: SITE.a, file: 'fresh-a.db' });
  pull(fresh, copy);
  assert.deepEqual(fresh.heads(), { [SITE.a]: 3 });
  assert.equal(fresh.transact((tx) => tx.upsert(kv, { k: 'k4' }))?.db_version, 4);
});

test('chunks are bounded by bytes as well as by changes', () => {
  const a = dir.open({ siteId: SITE.a });
  const text = 'é'.repeat(5000); // 10 000 UTF-8 bytes
  const cs = a.transact((tx) => {
    for (let i = 0; i < 4; i += 1) tx.upsert(kv, { k: `wide${i}`, a: text });
  })!;
  const size = (chunk: Changeset) => chunk.changes.reduce((sum, change) => sum + changeSize(change), 0);
  const chunks = chunkChangeset(cs, 100, 25_000);
  assert.equal(chunks.length, 2);
  assert.ok(chunks.every((chunk) => size(chunk) <= 25_000));
  assert.deepEqual(chunkChangeset(cs, 100, 1).map((chunk) => chunk.changes.length), Array(24).fill(1), 'at least one change per chunk');
  const served = [...a.changesFor(SITE.a, 1, 1, { maxBytes: 25_000 })];
  assert.equal(served.length, 2);
  assert.ok(served.every((chunk) => size(chunk) <= 25_000));
  const b = dir.open();
  for (const chunk of served) b.apply([chunk]);
  assert.deepEqual(b.all(kv), a.all(kv));
});
