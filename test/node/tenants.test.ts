import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openStore, peersTable, type CrdtStore } from '../../gossip/index.ts';
import { callerOf, createOrg, createToken, ensureAdminOrg, listOrgs, listTokens, RECORD_TABLES, registerPeerToken, requireOrg, revokeToken, rotatePeerToken, tokenHash, type RecordStore } from '../../node/records/index.ts';
import { orgsTable, spritesTable, tokensTable } from '../../node/records/tables.ts';

/** A one-replica mesh over a real in-memory store. */
function mesh(): RecordStore & { store: CrdtStore } {
  const store = openStore({ path: ':memory:', tables: [peersTable, ...RECORD_TABLES] });
  return { store, write: (fn) => store.transact(fn) };
}

/** The error code a call throws. */
function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

test("a peer's token row from before orgs is corrected to an admin token of its own name, and never un-revoked", () => {
  const m = mesh();
  m.write((tx) => tx.upsert(tokensTable, { hash: tokenHash('old'), name: 'admin', created: '2026-01-01T00:00:00.000Z' }));
  assert.deepEqual(callerOf(m.store, 'old'), { org: 'admin', admin: false, tokenName: 'admin' });
  registerPeerToken(m, 'old', 'PeerA');
  assert.deepEqual(callerOf(m.store, 'old'), { org: 'admin', admin: true, tokenName: 'peer-PeerA' });
  assert.equal(m.store.get(tokensTable, { hash: tokenHash('old') })?.created, '2026-01-01T00:00:00.000Z');
  m.write((tx) => tx.upsert(tokensTable, { hash: tokenHash('old'), revoked: true }));
  registerPeerToken(m, 'old', 'PeerA');
  assert.equal(callerOf(m.store, 'old'), undefined);
  // Peers' own tokens can be revoked (issue 13) and rotated: the new one counts, the old one never again.
  registerPeerToken(m, 'live', 'PeerB');
  revokeToken(m, 'peer-PeerB');
  assert.equal(callerOf(m.store, 'live'), undefined);
  rotatePeerToken(m, 'old', 'new', 'PeerA');
  assert.deepEqual(callerOf(m.store, 'new'), { org: 'admin', admin: true, tokenName: 'peer-PeerA' });
  assert.equal(callerOf(m.store, 'old'), undefined);
  registerPeerToken(m, 'old', 'PeerA');
  assert.equal(callerOf(m.store, 'old'), undefined, 'a rotated-out token never comes back');
});

test('orgs: admin always exists, names follow the rule, counts follow sprites and live tokens', () => {
  const m = mesh();
  ensureAdminOrg(m);
  ensureAdminOrg(m);
  assert.equal(m.store.all(orgsTable).length, 1);
  assert.equal(codeOf(() => createOrg(m, 'admin')), 'ERR_ORG_EXISTS');
  for (const bad of ['', 'A', '-x', 'x-', 'a'.repeat(64), 'a_b']) assert.equal(codeOf(() => createOrg(m, bad)), 'ERR_BAD_REQUEST', bad);
  createOrg(m, 'acme');
  assert.equal(codeOf(() => createOrg(m, 'acme')), 'ERR_ORG_EXISTS');
  assert.equal(codeOf(() => requireOrg(m.store, 'nobody')), 'ERR_ORG_NOT_FOUND');
  const made = createToken(m, { name: 'ci', org: 'acme', admin: false });
  createToken(m, { name: 'old', org: 'acme', admin: false });
  revokeToken(m, 'old');
  m.write((tx) => tx.upsert(spritesTable, { name: 's', id: 's', owner: 'p', epoch: 1, state: 'running', org: 'acme', http_port: 8080, created: '', updated: '' }));
  assert.deepEqual(listOrgs(m.store).map(({ name, sprites, tokens }) => [name, sprites, tokens]), [['acme', 1, 1], ['admin', 0, 0]]);
  assert.deepEqual(callerOf(m.store, made.token), { org: 'acme', admin: false, tokenName: 'ci' });
});

test('tokens: one name per token, listings hide secrets, revoking a name revokes every copy', () => {
  const m = mesh();
  const first = createToken(m, { name: 'ci', org: 'admin', admin: true });
  assert.equal(codeOf(() => createToken(m, { name: 'ci', org: 'admin', admin: false })), 'ERR_TOKEN_EXISTS');
  assert.equal(codeOf(() => createToken(m, { name: 'Bad', org: 'admin', admin: false })), 'ERR_BAD_REQUEST');
  assert.equal(codeOf(() => createToken(m, { name: 'x', org: 'nobody', admin: false })), 'ERR_ORG_NOT_FOUND');
  // Another peer issued the same name before the two synced: both rows exist.
  m.write((tx) => tx.upsert(tokensTable, { hash: tokenHash('twin'), name: 'ci', org: 'admin', created: new Date().toISOString() }));
  assert.deepEqual(listTokens(m.store).map((t) => Object.keys(t).sort()), [['admin', 'created', 'name', 'org', 'revoked'], ['admin', 'created', 'name', 'org', 'revoked']]);
  revokeToken(m, 'ci');
  assert.equal(callerOf(m.store, first.token), undefined);
  assert.equal(callerOf(m.store, 'twin'), undefined);
  revokeToken(m, 'ci');
  assert.equal(codeOf(() => revokeToken(m, 'nobody')), 'ERR_TOKEN_NOT_FOUND');
  assert.equal(codeOf(() => createToken(m, { name: 'ci', org: 'admin', admin: false })), 'ERR_TOKEN_EXISTS');
});
