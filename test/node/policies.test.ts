import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openStore, peersTable } from '../../gossip/index.ts';
import { checkDomain, parseNetworkPolicy, parsePrivilegesPolicy, parseResourcesPolicy } from '../../node/policies.ts';
import { RECORD_TABLES, SpriteDocs } from '../../node/records/index.ts';
import { spriteDocsTable } from '../../node/records/tables.ts';

const bad = (fn: () => unknown, message: RegExp): void => assert.throws(fn, (error: Error & { code?: string }) => error.code === 'ERR_BAD_REQUEST' && message.test(error.message));

test('domains: names, a leading wildcard or *, lowercased; anything else is refused', () => {
  assert.equal(checkDomain('GitHub.COM', 'd'), 'github.com');
  assert.equal(checkDomain('*.npmjs.org', 'd'), '*.npmjs.org');
  assert.equal(checkDomain('*', 'd'), '*');
  assert.equal(checkDomain('localhost', 'd'), 'localhost');
  for (const domain of ['', 'a..b', '.a.com', 'a.com.', 'foo.*.com', '*foo.com', '**.com', '*.', '-a.com', 'a-.com', 'a_b.com', `${'a'.repeat(64)}.com`, 'x'.repeat(254), 7]) {
    bad(() => checkDomain(domain, 'd'), /^d /);
  }
});

test('network policies: domain rules or the defaults preset, nothing mixed or unknown', () => {
  assert.deepEqual(parseNetworkPolicy({ rules: [{ domain: 'A.com', action: 'deny' }, { include: 'defaults' }] }), { rules: [{ domain: 'a.com', action: 'deny' }, { include: 'defaults' }] });
  assert.deepEqual(parseNetworkPolicy({ rules: [] }), { rules: [] });
  bad(() => parseNetworkPolicy({}), /body.rules must be an array/);
  bad(() => parseNetworkPolicy({ rules: [], extra: 1 }), /body.extra is not a known field/);
  bad(() => parseNetworkPolicy({ rules: [{ domain: 'a.com' }] }), /rules\[0\].action must be allow or deny/);
  bad(() => parseNetworkPolicy({ rules: [{ include: 'defaults', action: 'allow' }] }), /either include, or domain and action/);
  bad(() => parseNetworkPolicy({ rules: [{ include: 'all' }] }), /include must be "defaults"/);
  bad(() => parseNetworkPolicy({ rules: [{ domain: 'a.com', action: 'allow', port: 1 }] }), /rules\[0\].port is not a known field/);
  bad(() => parseNetworkPolicy({ rules: Array.from({ length: 257 }, () => ({ include: 'defaults' })) }), /at most 256/);
});

test('privileges and resources policies', () => {
  assert.deepEqual(parsePrivilegesPolicy({ profile: '', devices: ['/dev/fuse', '/dev/fuse'], no_new_privileges: false }), { profile: '', devices: ['/dev/fuse'], noNewPrivileges: false });
  bad(() => parsePrivilegesPolicy({ profile: 'admin' }), /body.profile/);
  bad(() => parsePrivilegesPolicy({ devices: ['/dev/./x'] }), /body.devices\[0\]/);
  bad(() => parsePrivilegesPolicy({ noNewPrivileges: 'yes' }), /true or false/);
  assert.deepEqual(parseResourcesPolicy({ memory: { limit_mb: 64, autoscale: false } }), { memory: { limit_mb: 64, autoscale: false } });
  assert.deepEqual(parseResourcesPolicy({}), {});
  bad(() => parseResourcesPolicy({ memory: { limit_mb: 1.5 } }), /limit_mb must be an integer/);
  bad(() => parseResourcesPolicy({ memory: { limitMB: 64 } }), /body.memory.limitMB is not a known field/);
});

test('sprite documents: stored per sprite id, and a malformed row read from gossip counts as none', () => {
  const store = openStore({ path: ':memory:', tables: [peersTable, ...RECORD_TABLES] });
  const docs = new SpriteDocs({ store, write: (fn) => store.transact(fn) });
  docs.write('s1', 'policy/network', { rules: [{ domain: 'a.com', action: 'allow' }] });
  assert.deepEqual(docs.read('s1', 'policy/network', parseNetworkPolicy), { rules: [{ domain: 'a.com', action: 'allow' }] });
  assert.equal(docs.read('s2', 'policy/network', parseNetworkPolicy), undefined);
  // What another (buggy or hostile) peer could gossip: not JSON, or JSON that fails the check.
  store.transact((tx) => tx.upsert(spriteDocsTable, { sprite: 's1', kind: 'policy/resources', doc: '{not json', updated: 't' }));
  assert.equal(docs.read('s1', 'policy/resources', parseResourcesPolicy), undefined);
  store.transact((tx) => tx.upsert(spriteDocsTable, { sprite: 's1', kind: 'policy/resources', doc: '{"memory":{"limit_mb":-5}}', updated: 't' }));
  assert.equal(docs.read('s1', 'policy/resources', parseResourcesPolicy), undefined);
  assert.throws(() => docs.write('s1', 'policy/network', { rules: ['x'.repeat(70_000)] }), /over 60 KiB/);
  docs.clear('s1');
  assert.equal(docs.read('s1', 'policy/network', parseNetworkPolicy), undefined);
  store.close();
});
