import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { openStore, PEER_RULES, peersTable, withRules, type CrdtStore, type TableDef } from '../../gossip/index.ts';
import { formatProxyColumn, generateMeshCert } from '../../proxy/index.ts';
import {
  CHECKED_RECORD_TABLES, createOrg, createToken, ImageRecords, PROXY_COLUMN_RULE, RECORD_RULES, RECORD_TABLES, registerPeerToken, setOrgQuotas, SpriteDocs, SpriteRecords,
} from '../../node/records/index.ts';
import { imagesTable, orgsTable, proxyCertsTable, spriteDocsTable, spritesTable, tokensTable } from '../../node/records/tables.ts';

/**
 * The content rules of the replicated records (node/records/row-rules.ts): every column has one,
 * rows the code writes pass them, and hostile values of each column are refused at merge.
 */

const peerId = async (): Promise<string> => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
const T0 = '2026-01-01T00:00:00.000Z';
const checkedPeers = withRules(peersTable, { ...PEER_RULES, proxy: PROXY_COLUMN_RULE });

function stores(): { writer: CrdtStore; reader: CrdtStore; sync(): void } {
  const writer = openStore({ path: ':memory:', tables: [peersTable, ...RECORD_TABLES] });
  const reader = openStore({ path: ':memory:', tables: [checkedPeers, ...CHECKED_RECORD_TABLES], logger: { warn: () => undefined } });
  return {
    writer, reader,
    sync: () => {
      for (const [site, ranges] of Object.entries(reader.needs(writer.heads(), writer.known()))) {
        for (const [lo, hi] of ranges) reader.apply([...writer.changesFor(site, lo, hi)]);
      }
    },
  };
}

test('every column of every replicated table has a content rule (booleans excepted)', () => {
  const tables: [TableDef, Readonly<Record<string, unknown>>][] = [[peersTable, { ...PEER_RULES, proxy: PROXY_COLUMN_RULE }], ...RECORD_TABLES.map((t): [TableDef, Readonly<Record<string, unknown>>] => [t, RECORD_RULES[t.name] ?? {}])];
  const missing = tables.flatMap(([table, rules]) => table.info.filter((c) => c.type !== 'boolean' && !rules[c.name]).map((c) => `${table.name}.${c.name}`));
  assert.deepEqual(missing, [], 'a new column needs a rule in node/records/row-rules.ts');
  for (const table of CHECKED_RECORD_TABLES) assert.ok(table.info.every((c) => c.type === 'boolean' || c.check), `${table.name}: rules attached`);
});

test('rows as the code writes them pass the rules', async () => {
  const { writer, reader, sync } = stores();
  const mesh = { store: writer, write: (fn: Parameters<CrdtStore['transact']>[0]) => writer.transact(fn) };
  const me = await peerId();
  writer.transact((tx) => tx.upsert(peersTable, {
    id: me, addrs: JSON.stringify([`/ip4/127.0.0.1/tcp/4001/p2p/${me}`]), api: 'http://127.0.0.1:7470',
    link: 'https://127.0.0.1:7471', proxy: formatProxyColumn({ http: 'http://127.0.0.1:7480', https: 'https://[::1]:7443', domain: 'sprites.localhost', link: 'https://127.0.0.1:7481' }),
    pool_target: 2, pool_ready: 1, capacity: 10, load: 0, version: '0.1.0', drain: 'draining', heartbeat: Date.now(),
  }));
  const newcomer = await peerId();
  writer.transact((tx) => tx.upsert(peersTable, { id: newcomer, addrs: '[]', api: '', pool_target: 0, pool_ready: 0, capacity: 0, load: 0, version: '', heartbeat: 0 }));
  const sprites = new SpriteRecords(mesh);
  sprites.insert({
    name: 'web', id: '0123456789', state: 'running', owner: me, epoch: 1, volume: 's3://bucket/prefix?endpoint=http://127.0.0.1:9000', org: 'acme',
    httpPort: 8080, created: T0, updated: T0, labels: ['team-a', 'env=prod'], environment: { GREETING: 'hi there' }, ramMb: 256, cpus: 0.5, urlAuth: 'public',
  });
  sprites.setState('web', me, 'failed', 'runc said:\nno');
  sprites.started('web', me, 'abcdef012345');
  sprites.setServices('web', me, JSON.stringify([{ name: 'httpd', cmd: 'busybox', args: ['httpd'], needs: [] }], null, 2));
  createOrg(mesh, 'acme');
  setOrgQuotas(mesh, 'acme', { sprites: 10, running: 2, checkpoints: 0, storage_bytes: 1e12 });
  createToken(mesh, { name: 'ci', org: 'acme', admin: false });
  registerPeerToken(mesh, 'secret', me);
  new ImageRecords(mesh).insert({ name: 'debian', volume: 'img-debian-0a1b2c3d', source: 'debian bookworm', bytes: 123, peer: me, created: T0 });
  const docs = new SpriteDocs(mesh);
  docs.write('0123456789', 'policy/network', { rules: [{ domain: 'example.com', action: 'allow' }, { include: 'defaults' }] });
  docs.write('0123456789', 'policy/privileges', { profile: 'standard', devices: ['/dev/fuse'], no_new_privileges: true });
  docs.write('0123456789', 'policy/resources', { memory: { limit_mb: 512, autoscale: true } });
  docs.write('0123456789', 'lineage', { head: 'v3', sources: { v2: 'v1' } });
  docs.write('0123456789', 'usage', { checkpoints: 3, stored_bytes: 123456 });
  const bundle = await generateMeshCert('sprites.localhost');
  writer.transact((tx) => tx.upsert(proxyCertsTable, { domain: 'sprites.localhost', bundle: JSON.stringify(bundle), created: T0 }));
  sync();
  assert.deepEqual(reader.health().droppedRows, {});
  assert.deepEqual(reader.dump().tables, writer.dump().tables);
});

test('hostile values of each column are refused at merge and never stored', async () => {
  const me = await peerId();
  const sprite = {
    name: 'web', id: '0123456789', owner: me, epoch: 1, state: 'running', url_auth: 'sprite', org: 'acme', volume: null, http_port: 8080,
    services: null, created: T0, updated: T0, reason: null, labels: '[]', environment: '{}', ram_mb: null, cpus: null, version: null,
    last_running_at: null, last_warming_at: null,
  };
  const peer = { id: me, addrs: '[]', api: 'http://127.0.0.1:7470', proxy: null, pool_target: 0, pool_ready: 0, capacity: 1, load: 0, version: 'x', drain: null, heartbeat: 1 };
  const cases: [TableDef, Record<string, unknown>][] = [
    [spritesTable, { name: '../../x' }], [spritesTable, { name: 'a/b' }], [spritesTable, { name: 'a\u0000b' }], [spritesTable, { name: 'x'.repeat(64) }],
    [spritesTable, { id: '../../../etc' }], [spritesTable, { id: '0123456789/..' }], [spritesTable, { id: '' }],
    [spritesTable, { owner: 'peer-b' }], [spritesTable, { owner: '../x' }], [spritesTable, { epoch: -1 }], [spritesTable, { state: 'rm -rf' }],
    [spritesTable, { url_auth: 'anyone' }], [spritesTable, { org: 'Admin' }], [spritesTable, { volume: 's3://user:pass@bucket/x' }],
    [spritesTable, { volume: 'http://evil/x' }], [spritesTable, { http_port: 0 }], [spritesTable, { http_port: 70000 }],
    [spritesTable, { services: '[{"name":"../../x","cmd":"sh"}]' }], [spritesTable, { services: 'not json' }],
    [spritesTable, { labels: '["not ok!"]' }], [spritesTable, { environment: '{"1BAD":"x"}' }], [spritesTable, { ram_mb: 1 }], [spritesTable, { cpus: 1e9 }],
    [spritesTable, { version: 'v\n1' }], [spritesTable, { created: 'yesterday' }],
    [peersTable, { id: 'not-a-peer' }], [peersTable, { addrs: '["/dns4/evil/tcp/1", "no"]' }], [peersTable, { api: 'http://user:pw@127.0.0.1:1' }],
    [peersTable, { api: 'http://127.0.0.1:1/path' }], [peersTable, { api: 'file:///etc/passwd' }], [peersTable, { api: 'http://127.0.0.1:1?x=1' }],
    [peersTable, { proxy: '{"http":"http://127.0.0.1:1/x","https":null,"domain":"d"}' }], [peersTable, { proxy: '{"http":"http://127.0.0.1:1","https":null,"domain":"../d"}' }],
    [peersTable, { capacity: -1 }], [peersTable, { drain: 'maybe' }],
  ];
  const { reader } = stores();
  for (const [i, [table, bad]] of cases.entries()) {
    const writer = openStore({ path: ':memory:', tables: [peersTable, ...RECORD_TABLES] });
    const base = table === spritesTable ? sprite : peer;
    writer.transact((tx) => tx.upsert(table as typeof spritesTable, { ...base, ...bad } as never));
    const result = reader.apply([...writer.changesFor(writer.siteId, 1, 1)]);
    assert.equal(result.dropped, 1, `case ${i} ${table.name} ${JSON.stringify(bad)} is refused`);
    writer.close();
  }
  assert.deepEqual(reader.all(spritesTable), []);
  assert.deepEqual(reader.all(peersTable), []);

  const other: [TableDef, Record<string, unknown>][] = [
    [tokensTable, { hash: 'zz', name: 'x', org: 'acme', admin: true, created: T0 }],
    [orgsTable, { name: 'big', created: T0, max_sprites: -1 }],
    [spriteDocsTable, { sprite: '0123456789', kind: 'usage', doc: '{"checkpoints":-5,"stored_bytes":0}', updated: T0 }],
    [tokensTable, { hash: 'a'.repeat(64), name: 'peer-../../x', org: 'acme', admin: true, created: T0 }],
    [imagesTable, { name: 'base', volume: '../../img', source: 'x', bytes: 1, peer: me, created: T0 }],
    [spriteDocsTable, { sprite: '../x', kind: 'lineage', doc: '{}', updated: T0 }],
    [spriteDocsTable, { sprite: '0123456789', kind: 'policy/../../x', doc: '{}', updated: T0 }],
    [spriteDocsTable, { sprite: '0123456789', kind: 'policy/privileges', doc: '{"devices":["/dev/../etc/shadow"]}', updated: T0 }],
    [spriteDocsTable, { sprite: '0123456789', kind: 'lineage', doc: '{"head":"../x","sources":{}}', updated: T0 }],
    [proxyCertsTable, { domain: 'sprites.localhost', bundle: '{"cert":"-----BEGIN nonsense","key":"x"}', created: T0 }],
  ];
  for (const [table, row] of other) {
    const writer = openStore({ path: ':memory:', tables: [peersTable, ...RECORD_TABLES] });
    writer.transact((tx) => tx.upsert(table as typeof tokensTable, row as never));
    assert.equal(reader.apply([...writer.changesFor(writer.siteId, 1, 1)]).dropped, 1, `${table.name} ${JSON.stringify(row)} is refused`);
    writer.close();
  }
  assert.deepEqual(Object.values(reader.dump().tables).flat(), []);
});
