import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openStore, peersTable, type CrdtStore, type Member, type MemberEvent } from '../../gossip/index.ts';
import { formatProxyColumn } from '../../proxy/index.ts';
import { edgeCerts, edgeRoutes, ImageRecords, RECORD_TABLES, SpriteRecords, type EdgeMesh, type SpriteRecord } from '../../node/records/index.ts';
import { spritesTable } from '../../node/records/tables.ts';

/** One replica of the records over a real in-memory store, with a failure detector driven by hand. */
function replica(peerId = 'peer-a'): EdgeMesh & { store: CrdtStore; emit(event: MemberEvent): void } {
  const store = openStore({ path: ':memory:', tables: [peersTable, ...RECORD_TABLES] });
  const listeners = new Set<(event: MemberEvent) => void>();
  return {
    peerId,
    store,
    write: (fn) => store.transact(fn),
    members: () => store.all(peersTable).map((row): Member => ({ id: row.id, self: row.id === peerId, state: 'alive', row })),
    onMemberChange: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit: (event) => {
      for (const listener of listeners) listener(event);
    },
  };
}

const T0 = '2026-01-01T00:00:00.000Z';

function record(name: string, owner: string, extra: Partial<SpriteRecord> = {}): SpriteRecord {
  return {
    name, id: `id-${name}`, state: 'running', owner, epoch: 1, volume: 'file:///objects', org: 'acme', services: [], httpPort: 8080, created: T0, updated: T0,
    urlAuth: 'sprite', labels: [], environment: {}, version: null, lastRunningAt: T0, lastWarmingAt: null, ...extra,
  };
}

test('sprite records map to rows and back, and only the owner changes a record', () => {
  const mesh = replica();
  const sprites = new SpriteRecords(mesh);
  const changed: string[] = [];
  const unwatch = sprites.watch((name) => changed.push(name));
  sprites.insert(record('web', 'peer-a'));
  assert.deepEqual(sprites.get('web'), record('web', 'peer-a'));
  assert.throws(() => sprites.insert(record('web', 'peer-b')), { code: 'ERR_NAME_TAKEN' });

  sprites.setState('web', 'peer-b', 'stopped');
  assert.equal(sprites.get('web')?.state, 'running', 'another peer cannot change the state');
  sprites.setState('web', 'peer-a', 'failed', 'boom');
  assert.equal(sprites.get('web')?.state, 'failed');
  assert.equal(sprites.get('web')?.reason, 'boom');
  sprites.setState('web', 'peer-a', 'running');
  assert.equal(sprites.get('web')?.reason, undefined, 'a reason goes with the failure');

  assert.equal(sprites.get('web')?.urlAuth, 'sprite');
  sprites.update('web', 'peer-b', { urlAuth: 'public', labels: ['x'] });
  assert.equal(sprites.get('web')?.urlAuth, 'sprite', 'another peer cannot change the settings');
  sprites.update('web', 'peer-a', { urlAuth: 'public' });
  assert.equal(sprites.get('web')?.urlAuth, 'public');
  sprites.update('web', 'peer-a', { labels: ['team-a', 'env=prod'] });
  assert.deepEqual([sprites.get('web')?.urlAuth, sprites.get('web')?.labels], ['public', ['team-a', 'env=prod']], 'an update leaves out what it does not name');

  sprites.setState('web', 'peer-a', 'warm');
  const warm = sprites.get('web')!;
  assert.ok(warm.lastWarmingAt !== null && warm.lastRunningAt !== null);
  sprites.started('web', 'peer-b', 'v-other');
  assert.equal(sprites.get('web')?.version, null);
  sprites.started('web', 'peer-a', 'abc123');
  assert.deepEqual([sprites.get('web')?.state, sprites.get('web')?.version], ['running', 'abc123']);

  sprites.setServices('web', 'peer-a', JSON.stringify([{ name: 'httpd' }, { name: 7 }, {}]));
  assert.deepEqual(sprites.get('web')?.services, ['httpd'], 'only well-formed service names show');
  sprites.setServices('web', 'peer-a', 'not json');
  assert.deepEqual(sprites.get('web')?.services, []);
  assert.equal(sprites.services('web'), 'not json');

  sprites.insert(record('api', 'peer-a'));
  const listed = sprites.list();
  assert.deepEqual(listed.map((r) => [r.name, r.state, r.version]), [['api', 'running', null], ['web', 'running', 'abc123']], 'by name, as recorded');
  assert.equal(sprites.list()[0], listed[0], 'an unchanged row converts once');
  sprites.remove('api', 'peer-a');
  assert.deepEqual(sprites.list().map((r) => r.name), ['web'], 'the listing follows changes');

  sprites.remove('web', 'peer-b');
  assert.ok(sprites.get('web'));
  sprites.remove('web', 'peer-a');
  assert.equal(sprites.get('web'), undefined);
  unwatch();
  assert.ok(changed.length >= 5 && changed.every((name) => name === 'web' || name === 'api'));
});

test('what a create chose is recorded, and columns another peer wrote are read only when they fit the rules', () => {
  const mesh = replica();
  const sprites = new SpriteRecords(mesh);
  sprites.insert({ ...record('made', 'peer-a'), labels: ['a', 'b'], environment: { GREETING: 'hi' }, ramMb: 256, cpus: 0.5, urlAuth: 'public' });
  assert.deepEqual(sprites.get('made'), record('made', 'peer-a', { labels: ['a', 'b'], environment: { GREETING: 'hi' }, ramMb: 256, cpus: 0.5, urlAuth: 'public' }));
  // A row as a broken or hostile peer could gossip it.
  mesh.write((tx) => tx.upsert(spritesTable, {
    name: 'odd', id: 'x', owner: 'peer-b', epoch: 1, state: 'running', url_auth: 'anyone', org: 'acme', volume: null, http_port: 8080, created: T0, updated: T0,
    labels: '["ok", "not ok!"]', environment: '{"1BAD": "x"}', ram_mb: -5, cpus: Number.MAX_VALUE, version: 'bad version\n', last_running_at: 'yesterday', last_warming_at: '{}',
  }));
  const odd = sprites.get('odd')!;
  assert.deepEqual(
    [odd.urlAuth, odd.labels, odd.environment, odd.ramMb, odd.cpus, odd.version, odd.lastRunningAt, odd.lastWarmingAt],
    ['sprite', [], {}, undefined, undefined, null, null, null],
  );
  mesh.write((tx) => tx.upsert(spritesTable, { name: 'odd', labels: 'not json', environment: '["a"]' }));
  assert.deepEqual([sprites.get('odd')?.labels, sprites.get('odd')?.environment], [[], {}]);
});

test('a claim wins only against the record it saw, and raises the epoch', () => {
  const mesh = replica();
  const sprites = new SpriteRecords(mesh);
  sprites.insert(record('db', 'peer-dead'));
  const seen = sprites.get('db')!;
  const claimed = sprites.claim(seen, 'peer-a', 'cold');
  assert.equal(claimed?.owner, 'peer-a');
  assert.equal(claimed?.epoch, 2);
  assert.equal(claimed?.state, 'cold');
  assert.equal(sprites.claim(seen, 'peer-b', 'running'), undefined, 'a second claim from the same view loses');
  assert.equal(sprites.get('db')?.owner, 'peer-a');
});

test('image records: the first image of a name stays, and its volume counts as named', () => {
  const images = new ImageRecords(replica());
  const info = { name: 'base', volume: 'img-base-1', source: 'busybox', bytes: 10, peer: 'peer-a', created: 't0' };
  assert.equal(images.insert(info), true);
  assert.equal(images.insert({ ...info, volume: 'img-base-2' }), false);
  assert.deepEqual(images.get('base'), info);
  assert.deepEqual([...images.volumes()], ['img-base-1']);
  images.delete('base');
  assert.deepEqual(images.list(), []);
});

test("the proxy's routes follow sprite rows, peers' proxy addresses and member states", () => {
  const mesh = replica();
  const sprites = new SpriteRecords(mesh);
  sprites.insert(record('web', 'peer-b', { state: 'warm' }));
  mesh.write((tx) => tx.upsert(peersTable, {
    id: 'peer-b', addrs: '[]', api: 'http://127.0.0.1:1', link: null, proxy: formatProxyColumn({ http: 'http://127.0.0.1:7480', https: null, domain: 'sprites.localhost', link: 'https://127.0.0.1:7481' }),
    pool_target: 0, pool_ready: 0, capacity: 1, load: 0, version: 'test', heartbeat: 1,
  }));
  const routes = edgeRoutes(mesh);
  const seen: [string, boolean][] = [];
  const unfollow = routes.onSpriteChange((name, gone) => seen.push([name, gone]));
  const first = routes.sprite('web');
  assert.deepEqual(first, { name: 'web', owner: 'peer-b', org: 'acme', urlAuth: 'sprite', state: 'warm', httpPort: 8080, reason: null });
  assert.equal(routes.sprite('web'), first, 'an unchanged row converts once');
  assert.deepEqual(routes.peerTarget('peer-b'), { host: '127.0.0.1', port: 7481, peer: 'peer-b' });
  assert.equal(routes.peerTarget('peer-b'), routes.peerTarget('peer-b'), 'an unchanged row parses once');
  assert.equal(routes.peerTarget('peer-c'), undefined);
  assert.equal(routes.peerState('peer-b'), 'alive');
  mesh.emit({ id: 'peer-b', from: 'alive', to: 'down' });
  assert.equal(routes.peerState('peer-b'), 'down');

  sprites.update('web', 'peer-b', { urlAuth: 'public' });
  assert.notEqual(routes.sprite('web'), first);
  assert.equal(routes.sprite('web')?.urlAuth, 'public');
  sprites.remove('web', 'peer-b');
  assert.equal(routes.sprite('web'), undefined);
  assert.deepEqual(seen, [['web', false], ['web', true]]);
  unfollow();
  routes.close();
  mesh.emit({ id: 'peer-b', from: 'down', to: 'alive' });
  assert.equal(routes.peerState('peer-b'), 'down', 'a closed view stops following the failure detector');
});

test('certificate bundles are kept per domain and changes are reported for that domain only', () => {
  const certs = edgeCerts(replica());
  const changes: (string | undefined)[] = [];
  const unfollow = certs.onChange('a.test', (bundle) => changes.push(bundle));
  certs.put('b.test', '{"b":1}');
  certs.put('a.test', '{"a":1}');
  assert.equal(certs.get('a.test'), '{"a":1}');
  assert.equal(certs.get('c.test'), undefined);
  assert.deepEqual(changes, ['{"a":1}']);
  unfollow();
});
