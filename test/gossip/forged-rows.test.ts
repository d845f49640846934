import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import Database from 'better-sqlite3';
import { decode, encode } from 'cbor-x';
import fc from 'fast-check';
import { decodeChangesets, encodeChangesets, openStore, PEER_RULES, peersTable, SENTINEL, type CrdtStore, type TableDef, type ValueCheck } from '../../gossip/index.ts';
import { createHost, type Host } from '../../gossip/host.ts';
import { storeReplica } from '../../gossip/store-replica.ts';
import { Sync } from '../../gossip/sync.ts';
import { PROXY_COLUMN_RULE, RECORD_RULES, RECORD_TABLES } from '../../node/records/index.ts';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

/**
 * Forged rows over a raw libp2p client that holds the swarm key: the project's own host
 * (TCP + pnet + noise + yamux + gossipsub) publishes changesets of every table with hostile values
 * (fast-check, fixed seed). The peer must stay up and answer, store no row that breaks a rule, relay
 * none of them to another member, and create no file outside its data dir.
 */

const TOPIC = 'sprites/changes/1';
const TABLES: readonly TableDef[] = [peersTable, ...RECORD_TABLES];
const RULES: Record<string, Readonly<Record<string, ValueCheck>>> = { ...RECORD_RULES, peers: { ...PEER_RULES, proxy: PROXY_COLUMN_RULE } };
const CANARY = `canary-${randomBytes(4).toString('hex')}`;
const T0 = '2026-01-01T00:00:00.000Z';

let peer: PeerProcess;
let forger: Host;
let observer: Host;
let writer: CrdtStore;
const relayed: Uint8Array[] = [];
let fakePeers: string[] = [];
let swarmKey: Buffer;

/** Why a value of `table.column` breaks its rule, or undefined. */
function problem(table: string, column: string, value: unknown): string | undefined {
  const rule = RULES[table]?.[column];
  return rule && value !== null && value !== undefined ? rule(value as never) : undefined;
}

async function host(swarmKey: Uint8Array): Promise<Host> {
  const node = await createHost({ privateKey: await generateKeyPair('Ed25519'), swarmKey, listen: ['/ip4/127.0.0.1/tcp/0'] });
  await node.start();
  node.services.pubsub.subscribe(TOPIC);
  return node;
}

before(async () => {
  peer = await startPeer({ poolDepth: 0 });
  swarmKey = await readFile(peer.swarmKey);
  forger = await host(swarmKey);
  observer = await host(swarmKey);
  observer.services.pubsub.addEventListener('gossipsub:message', (event) => {
    if (event.detail.msg.topic === TOPIC) relayed.push(event.detail.msg.data);
  });
  const target = peer.joinAddr.split('/p2p/')[1]!;
  for (const node of [forger, observer]) {
    await node.dial(multiaddr(peer.joinAddr));
    await eventually(() => node.services.pubsub.getSubscribers(TOPIC).some((id) => id.toString() === target) || undefined, 20_000, 'the peer subscribed');
  }
  writer = openStore({ path: ':memory:', tables: TABLES, siteId: randomBytes(16).toString('hex') });
  fakePeers = await Promise.all([1, 2, 3].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()));
});

after(async () => {
  await Promise.resolve(forger?.stop()).catch(() => undefined);
  await Promise.resolve(observer?.stop()).catch(() => undefined);
  writer?.close();
  if (peer) {
    await peer.stop();
    await removeDataDir(peer.dataDir);
  }
});

/** Commits one forged row on the forger's own store and publishes it as the mesh's broadcast does. */
async function forge(table: TableDef, row: Record<string, unknown>): Promise<boolean> {
  let changeset;
  try {
    changeset = writer.transact((tx) => tx.upsert(table as typeof peersTable, row as never));
  } catch {
    return false; // not even the forger's own store takes it (ill-formed unicode): not a row to send
  }
  if (changeset) await publish(encode({ b: encodeChangesets([changeset]) }));
  return changeset !== undefined;
}

async function publish(data: Uint8Array): Promise<void> {
  await forger.services.pubsub.publish(TOPIC, data).catch(() => undefined);
}

/** A valid org row, to know when everything published before it went through the peer. */
async function marker(name: string): Promise<void> {
  await forge(RECORD_TABLES[2]!, { name, created: T0 });
  await eventually(async () => (await peer.api('GET', '/v1/orgs')).body?.orgs?.some((org: { name: string }) => org.name === name) || undefined, 20_000, `org ${name} arrived`);
  await eventually(() => relayedRows().some(({ table, pk }) => table === 'orgs' && pk[0] === name) || undefined, 20_000, `org ${name} relayed`);
}

function relayedRows(): { table: string; pk: unknown[]; cid: string; val: unknown }[] {
  return relayed.flatMap((data) => {
    const payload = decode(data) as { b?: Uint8Array };
    return payload.b ? decodeChangesets(payload.b).flatMap((cs) => cs.changes) : [];
  });
}

// Values a hostile swarm-key holder would try: paths out of the data dir, NUL, shell, URLs with
// credentials or paths, huge and empty names, JSON of the wrong shape.
const HOSTILE = [
  `../../${CANARY}`, `../../../../../../tmp/${CANARY}`, `/tmp/${CANARY}`, `a/${CANARY}`, `${CANARY}\u0000x`, `$(touch /tmp/${CANARY})`, `;touch /tmp/${CANARY}`,
  '', ' ', 'A', '-x', 'x'.repeat(5000), '%2e%2e%2f', '\n', 'http://user:pw@127.0.0.1:9', 'http://127.0.0.1:9/evil', 'file:///etc/passwd', 'http://127.0.0.1:9?x',
  '{"__proto__":{"polluted":1}}', '[{"name":"../../x","cmd":"sh"}]', '["/ip4/127.0.0.1/tcp/9", 7]', 'null', '12D3KooWnotreallyapeerid',
];
const hostileText = fc.oneof(fc.constantFrom(...HOSTILE), fc.string({ maxLength: 40, unit: 'binary' }));
const hostileInt = fc.constantFrom(-1, 0, 70_000, 1.5, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER);
const hex = (n: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
const name = fc.nat(9999).map((n) => `fz-${n}`);

/** A column: a valid value (loopback addresses only) and how to spoil it. */
type Column = [valid: fc.Arbitrary<unknown>, hostile: fc.Arbitrary<unknown>];
const t = (valid: fc.Arbitrary<unknown>): Column => [valid, hostileText];
const n = (valid: fc.Arbitrary<unknown>): Column => [valid, hostileInt];
const orNull = ([valid, hostile]: Column): Column => [fc.oneof(fc.constant(null), valid), hostile];
const time = t(fc.constant(T0));

/** Rows of a table: valid ones, and valid ones with one to three columns spoiled. */
function rowsOf(columns: Record<string, Column>): fc.Arbitrary<Record<string, unknown>> {
  const names = Object.keys(columns);
  const valid = fc.record(Object.fromEntries(names.map((key) => [key, columns[key]![0]])));
  const hostile = fc.record(Object.fromEntries(names.map((key) => [key, columns[key]![1]])));
  const spoiled = fc.tuple(valid, hostile, fc.subarray(names, { minLength: 1, maxLength: Math.min(3, names.length) }))
    .map(([good, bad, keys]) => ({ ...good, ...Object.fromEntries(keys.map((key) => [key, bad[key]])) }));
  return fc.oneof({ arbitrary: valid, weight: 1 }, { arbitrary: spoiled, weight: 2 });
}

function rows(): [TableDef, fc.Arbitrary<Record<string, unknown>>][] {
  const peerId = fc.constantFrom(...fakePeers);
  const [sprites, tokens, orgs, certs, images, docs] = RECORD_TABLES;
  return [
    [peersTable, rowsOf({
      id: t(peerId), addrs: t(fc.constant('[]')), api: t(fc.constant('http://127.0.0.1:9')),
      proxy: orNull(t(fc.constant('{"http":"http://127.0.0.1:9","https":null,"domain":"sprites.localhost"}'))),
      pool_target: n(fc.nat(4)), pool_ready: n(fc.nat(4)), capacity: n(fc.nat(4)), load: n(fc.nat(4)), version: t(fc.constant('0.1.0')),
      drain: orNull(t(fc.constantFrom('draining', 'drained'))), heartbeat: [fc.nat(), fc.constant(-1)],
    })],
    [sprites!, rowsOf({
      name: t(name), id: t(hex(10)), owner: t(peerId), epoch: n(fc.nat(9)), state: t(fc.constantFrom('running', 'cold', 'stopped')), url_auth: t(fc.constant('sprite')),
      org: t(fc.constant('acme')), volume: orNull(t(fc.constant('file:///nonexistent-store'))), http_port: n(fc.constant(8080)),
      services: orNull(t(fc.constant('[{"name":"web","cmd":"true"}]'))), created: time, updated: time, reason: orNull(t(fc.constantFrom(...HOSTILE))),
      labels: t(fc.constant('["a"]')), environment: t(fc.constant('{"A":"b"}')), ram_mb: orNull(n(fc.constant(256))), cpus: [fc.constant(0.5), fc.constantFrom(-1, 1e9)],
      version: orNull(t(hex(12))), last_running_at: orNull(time), last_warming_at: orNull(time),
    })],
    [tokens!, rowsOf({ hash: t(hex(64)), name: t(name), org: t(fc.constant('acme')), admin: [fc.constant(false), fc.constant(false)], created: time, revoked: [fc.boolean(), fc.boolean()] })],
    [orgs!, rowsOf({ name: t(name), created: time })],
    [certs!, rowsOf({ domain: t(fc.constant('forged.localhost')), bundle: t(fc.constant('{"cert":"-----BEGIN x","key":"y"}')), created: time })],
    [images!, rowsOf({ name: t(name), volume: t(name.map((v) => `img-${v}`)), source: t(fc.constant('busybox')), bytes: n(fc.nat()), peer: t(peerId), created: time })],
    [docs!, rowsOf({ sprite: t(hex(10)), kind: t(fc.constantFrom('lineage', 'policy/network')), doc: t(fc.constant('{}')), updated: time })],
  ];
}

/** Every stored value of the peer's `mesh.db` that breaks its column's rule. */
function storedViolations(): string[] {
  const db = new Database(join(peer.dataDir, 'mesh.db'), { readonly: true, fileMustExist: true });
  try {
    const bad: string[] = [];
    for (const table of TABLES) {
      for (const row of db.prepare(`SELECT * FROM "${table.name}"`).all() as Record<string, unknown>[]) {
        for (const column of table.info) {
          // A column no version wrote reads as its default (a row whose creating version was
          // refused and a later one updated): not the sender's content.
          if (row[column.name] === column.default) continue;
          const why = problem(table.name, column.name, row[column.name]);
          if (why) bad.push(`${table.name}.${column.name} ${why}: ${JSON.stringify(row[column.name]).slice(0, 80)}`);
        }
      }
    }
    return bad;
  } finally {
    db.close();
  }
}

test('forged rows of every table: the peer stays up, stores and relays only valid ones, writes nothing outside its data dir', { timeout: 85_000 }, async () => {
  await marker('fz-start');
  const self = peer.joinAddr.split('/p2p/')[1]!;
  // Rows aimed at this very peer: its own sprite with an id that climbs out of the data dir.
  await forge(RECORD_TABLES[0]!, {
    name: 'fz-own', id: `../../${CANARY}`, owner: self, epoch: 9, state: 'running', url_auth: 'sprite', org: 'admin', volume: null, http_port: 8080,
    services: '[{"name":"x","cmd":"true"}]', created: T0, updated: T0, labels: '[]', environment: '{}',
  });
  await forge(peersTable, { id: self, addrs: '[]', api: `http://user:pw@127.0.0.1:9/${CANARY}`, pool_target: 0, pool_ready: 0, capacity: 0, load: 0, version: 'x', heartbeat: Date.now() });
  let forged = 0;
  let invalid = 0;
  for (const [index, [table, arbitrary]] of rows().entries()) {
    for (const row of fc.sample(arbitrary, { seed: 1300 + index, numRuns: 40 })) {
      if (!(await forge(table, row))) continue;
      forged += 1;
      if (table.info.some((column) => problem(table.name, column.name, row[column.name]))) invalid += 1;
    }
  }
  // Bytes that are not a message at all, and well-formed messages of garbage.
  for (const bytes of fc.sample(fc.uint8Array({ maxLength: 256 }), { seed: 1399, numRuns: 20 })) await publish(bytes);
  for (const bytes of fc.sample(fc.uint8Array({ maxLength: 256 }), { seed: 1398, numRuns: 20 })) await publish(encode({ b: bytes }));
  await marker('fz-end');
  assert.ok(forged >= 250 && invalid >= 100 && forged - invalid >= 50, `a real mix: ${forged} forged, ${invalid} invalid`);

  // Up and answering, and it counted what it refused.
  assert.equal(peer.process.exitCode, null);
  const health = await peer.api('GET', '/v1/mesh/health');
  assert.equal(health.status, 200);
  const dropped = Object.values(health.body.store.dropped_rows as Record<string, number>).reduce((a, b) => a + b, 0);
  assert.ok(dropped >= 2, `refused rows counted: ${JSON.stringify(health.body.store)}`);
  assert.ok(health.body.broadcast.rejected >= 1, 'garbage messages counted');

  // Nothing stored breaks a rule (the peer's own rows included), defaults aside.
  assert.deepEqual(storedViolations(), []);
  const db = new Database(join(peer.dataDir, 'mesh.db'), { readonly: true, fileMustExist: true });
  try {
    assert.equal(db.prepare('SELECT * FROM sprites WHERE name = ?').get('fz-own'), undefined);
  } finally {
    db.close();
  }

  // Nothing relayed to the other member breaks a rule.
  const relayedBad = relayedRows().filter((change) => change.cid !== SENTINEL && problem(change.table, change.cid, change.val));
  assert.deepEqual(relayedBad.map((c) => `${c.table}.${c.cid}`), []);

  // No file anywhere the forged paths pointed at (find prints every match; -xdev keeps it out of
  // the sprites' mounted disks, its own and other tests').
  const roots = ['/tmp', join(peer.dataDir, '..'), peer.dataDir, '/run', '/sys/fs/cgroup'];
  const found = await promisify(execFile)('find', [...roots, '-xdev', '-maxdepth', '5', '-name', `*${CANARY}*`]).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
  assert.equal(found.stdout.trim(), '');
});

test('forged rows served by anti-entropy are refused the same way', { timeout: 60_000 }, async () => {
  // Another forger that gossips nothing: the peer pulls its versions over the sync protocol.
  const node = await host(swarmKey);
  const store = openStore({ path: ':memory:', tables: TABLES, siteId: randomBytes(16).toString('hex') });
  const sync = new Sync(node, storeReplica(store), { intervalMs: 500 });
  try {
    let written = 0;
    for (const [index, [table, arbitrary]] of rows().entries()) {
      for (const row of fc.sample(arbitrary, { seed: 1400 + index, numRuns: 10 })) {
        try {
          if (store.transact((tx) => tx.upsert(table as typeof peersTable, row as never))) written += 1;
        } catch {
          // ill-formed unicode: the forger's own store refuses it
        }
      }
    }
    store.transact((tx) => tx.upsert(RECORD_TABLES[2]!, { name: 'fz-sync', created: T0 }));
    assert.ok(written >= 50, `${written} versions to serve`);
    const before = (await peer.api('GET', '/v1/mesh/health')).body.store.dropped_rows as Record<string, number>;
    await sync.start();
    await node.dial(multiaddr(peer.joinAddr));
    await eventually(async () => (await peer.api('GET', '/v1/orgs')).body?.orgs?.some((org: { name: string }) => org.name === 'fz-sync') || undefined, 30_000, 'the pulled org');
    const health = (await peer.api('GET', '/v1/mesh/health')).body;
    const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);
    assert.ok(sum(health.store.dropped_rows) > sum(before), 'rows pulled by anti-entropy were refused and counted');
    assert.deepEqual(storedViolations(), []);
    assert.equal(peer.process.exitCode, null);
  } finally {
    await sync.stop();
    await Promise.resolve(node.stop()).catch(() => undefined);
    store.close();
  }
});
