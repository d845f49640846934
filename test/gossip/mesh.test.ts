import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Mesh } from '../../gossip/mesh.ts';
import { defineTable } from '../../gossip/index.ts';

const dirs: string[] = [];
const meshes: Mesh[] = [];
after(async () => {
  for (const mesh of meshes) await mesh.stop().catch(() => undefined);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** A replicated table of the test's own, shaped like the peer's sprites table. */
const spritesTable = defineTable({
  name: 'sprites',
  primaryKey: ['name'],
  columns: {
    name: 'text', id: 'text', owner: 'text', epoch: 'integer', state: 'text', url_auth: { type: 'text', default: 'sprite' }, org: { type: 'text', default: 'admin' },
    volume: { type: 'text', nullable: true }, http_port: 'integer', services: { type: 'text', nullable: true }, created: 'text', updated: 'text', reason: { type: 'text', nullable: true },
  },
});

const quiet = { info: () => undefined, warn: () => undefined };
const describeSelf = () => ({ api: 'http://127.0.0.1:1', link: null, proxy: null, pool_target: 0, pool_ready: 0, capacity: 10, load: 0, drain: null, version: 'test' });

async function peer(options: { bootstrap?: string[]; swarmKeyFile?: string } = {}): Promise<Mesh> {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-test-'));
  dirs.push(dir);
  const mesh = await Mesh.open({
    dataDir: dir, tables: [spritesTable], listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: options.bootstrap ?? [], swarmKeyFile: options.swarmKeyFile,
    heartbeatMs: 200, syncIntervalMs: 300, membership: { suspectAfterMs: 1000, downAfterMs: 2500 }, describe: describeSelf, logger: quiet,
  });
  meshes.push(mesh);
  await mesh.start();
  return mesh;
}

async function until<T>(check: () => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const sprite = (name: string, owner: string) => ({
  name, id: name, owner, epoch: 1, state: 'running', url_auth: 'sprite', volume: null, http_port: 8080, created: 'now', updated: 'now', reason: null,
});

test('three peers joined through one bootstrap see each other and each other\'s writes', async () => {
  const a = await peer();
  const key = join(dirs[0]!, 'swarm.key');
  const b = await peer({ bootstrap: a.addresses(), swarmKeyFile: key });
  const c = await peer({ bootstrap: a.addresses(), swarmKeyFile: key });
  for (const mesh of [a, b, c]) {
    await until(() => mesh.members().filter((m) => m.state === 'alive').length === 3, `${mesh.peerId} to see 3 alive members`);
  }
  b.write((tx) => tx.upsert(spritesTable, sprite('from-b', b.peerId)));
  for (const mesh of [a, c]) await until(() => mesh.store.get(spritesTable, { name: 'from-b' }), 'the write on every peer');
  // c learned a's and b's addresses from the records: it connects to b directly, not only via a.
  await until(() => c.host.getPeers().some((p) => p.toString() === b.peerId), 'c connected to b');
});

test('a peer without the swarm key cannot join', async () => {
  const a = meshes[0]!;
  const outsider = await peer({ bootstrap: a.addresses() });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(outsider.host.getPeers().length, 0);
  assert.equal(a.members().some((m) => m.id === outsider.peerId), false);
});

test('a stopped peer is suspected, then down; its rows stay', async () => {
  const [a, , c] = meshes;
  c!.write((tx) => tx.upsert(spritesTable, sprite('from-c', c!.peerId)));
  await until(() => a!.store.get(spritesTable, { name: 'from-c' }), 'from-c on a');
  const cId = c!.peerId;
  await c!.stop();
  meshes.splice(meshes.indexOf(c!), 1);
  await until(() => a!.members().find((m) => m.id === cId)?.state === 'down', 'c down on a', 10_000);
  assert.ok(a!.store.get(spritesTable, { name: 'from-c' }));
});

test('a peers row seen before its first version still lists (columns merge independently)', async () => {
  const { parseAddrs } = await import('../../gossip/peers.ts');
  assert.deepEqual(parseAddrs(''), []);
  assert.deepEqual(parseAddrs('{"not":"a list"}'), []);
  assert.deepEqual(parseAddrs('["/ip4/127.0.0.1/tcp/1", 7]'), ['/ip4/127.0.0.1/tcp/1']);
});

test('garbage from a peer holding the swarm key is dropped, counted, and changes nothing', async () => {
  const { createHost } = await import('../../gossip/host.ts');
  const { generateKeyPair } = await import('@libp2p/crypto/keys');
  const { readFile } = await import('node:fs/promises');
  const { lpStream } = await import('@libp2p/utils');
  const { encode } = await import('cbor-x');
  const target = meshes[0]!;
  const before = JSON.stringify(target.store.dump().tables);
  const rogue = await createHost({
    privateKey: await generateKeyPair('Ed25519'), swarmKey: await readFile(join(dirs[0]!, 'swarm.key')), listen: ['/ip4/127.0.0.1/tcp/0'],
  });
  await rogue.start();
  try {
    rogue.services.pubsub.subscribe('sprites/changes/1');
    await rogue.dial(target.host.getMultiaddrs()[0]!);
    await until(() => rogue.services.pubsub.getSubscribers('sprites/changes/1').length > 0, 'rogue to see the topic');
    const garbage = [
      new Uint8Array([0xff, 0x00, 0x13]),
      encode({ b: new Uint8Array([1, 2, 3]) }),
      encode({ b: encode([1, [['not-a-site', 1, 0, 0, 0, 1, null, [['nope', ['x'], 'c', 1, 1, 0, 1]]]]]) }),
      encode({ p: [{}, 'x'] }),
    ];
    for (const payload of garbage) await rogue.services.pubsub.publish('sprites/changes/1', payload);
    const stream = await rogue.dialProtocol(target.host.peerId, '/sprites/sync/1.0.0');
    const lp = lpStream(stream);
    await lp.write(encode({ known: { 'not hex': [[5, 1]] } }));
    await until(() => target.health().rejectedMessages >= 3, 'gossip rejections counted');
    await until(() => target.health().sync.rejected >= 1, 'the bad sync request counted');
  } finally {
    await rogue.stop();
  }
  const after = JSON.parse(JSON.stringify(target.store.dump().tables)) as Record<string, unknown[]>;
  const beforeTables = JSON.parse(before) as Record<string, unknown[]>;
  // Only heartbeats of the real peers may have changed in the meantime; no row from the rogue.
  assert.deepEqual(Object.keys(after).sort(), Object.keys(beforeTables).sort());
  assert.equal((after.sprites ?? []).length, (beforeTables.sprites ?? []).length);
  // The peer still works.
  target.write((tx) => tx.upsert(spritesTable, sprite('after-garbage', target.peerId)));
  assert.ok(target.store.get(spritesTable, { name: 'after-garbage' }));
});
