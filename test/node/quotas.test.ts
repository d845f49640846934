import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openStore, peersTable, type CrdtStore } from '../../gossip/index.ts';
import { buildConfig } from '../../node/config.ts';
import { optionsFromFlags } from '../../node/options.ts';
import { OrgQuotas } from '../../node/quotas.ts';
import { createOrg, ensureAdminOrg, orgUsage, RECORD_TABLES, setOrgQuotas, SpriteDocs, type RecordStore } from '../../node/records/index.ts';
import { spritesTable } from '../../node/records/tables.ts';

/** A one-replica mesh over a real in-memory store. */
function mesh(): RecordStore & { store: CrdtStore } {
  const store = openStore({ path: ':memory:', tables: [peersTable, ...RECORD_TABLES] });
  return { store, write: (fn) => store.transact(fn) };
}

/** A sprite row of `org` in `state` with volume id `id`. */
function sprite(m: RecordStore, name: string, org: string, state: string): void {
  const now = new Date().toISOString();
  m.write((tx) => tx.upsert(spritesTable, { name, id: `id-${name}`, owner: 'P', epoch: 1, state, org, http_port: 8080, created: now, updated: now }));
}

/** The code and details a call throws. */
function refusal(fn: () => unknown): Record<string, unknown> | undefined {
  try {
    fn();
  } catch (error) {
    const { code, details } = error as { code: string; details?: Record<string, unknown> };
    return { code, ...details };
  }
  return undefined;
}

const NONE = { sprites: null, running: null, checkpoints: null, storage_bytes: null };

test('usage counts sprites, those awake or warm, and the checkpoints and bytes of their usage documents; malformed ones count nothing', () => {
  const m = mesh();
  createOrg(m, 'acme');
  for (const [name, state] of [['a', 'running'], ['b', 'warm'], ['c', 'cold'], ['d', 'stopped'], ['e', 'failed']] as const) sprite(m, name, 'acme', state);
  sprite(m, 'x', 'globex', 'running');
  const docs = new SpriteDocs(m);
  docs.write('id-a', 'usage', { checkpoints: 2, stored_bytes: 4096 });
  docs.write('id-c', 'usage', { checkpoints: 1, stored_bytes: 100 });
  docs.write('id-d', 'usage', { checkpoints: -1, stored_bytes: 5 });
  docs.write('id-x', 'usage', { checkpoints: 9, stored_bytes: 9 });
  // A document of a sprite id no row has (a destroyed sprite's, left behind): not counted.
  docs.write('id-gone', 'usage', { checkpoints: 7, stored_bytes: 7 });
  assert.deepEqual(orgUsage(m.store, 'acme'), { sprites: 5, running: 2, checkpoints: 3, storage_bytes: 4196 });
});

test("an org's own quotas win over the defaults; null gives a kind back; each action is refused by its kinds with Sprites' 429 fields", () => {
  const m = mesh();
  ensureAdminOrg(m);
  createOrg(m, 'acme');
  const quotas = new OrgQuotas(m.store, { ...NONE, sprites: 2, running: 5 });
  sprite(m, 'a', 'acme', 'running');
  sprite(m, 'b', 'acme', 'cold');
  assert.deepEqual(refusal(() => quotas.check('acme', 'create')), {
    code: 'ERR_QUOTA_EXCEEDED', quota: 'sprites', current_count: 2, limit: 2, retry_after_seconds: 30,
  });
  // A start adds no sprite: only the running quota holds it.
  assert.equal(refusal(() => quotas.check('acme', 'start')), undefined);
  setOrgQuotas(m, 'acme', { sprites: 10, running: 1 });
  assert.equal(quotas.view('acme').sprites.source, 'org');
  assert.equal(refusal(() => quotas.check('acme', 'start'))?.quota, 'running');
  assert.equal(refusal(() => quotas.check('acme', 'checkpoint')), undefined);
  setOrgQuotas(m, 'acme', { running: null, checkpoints: 0 });
  assert.deepEqual(quotas.view('acme').running, { limit: 5, used: 1, source: 'default' });
  assert.equal(refusal(() => quotas.check('acme', 'checkpoint'))?.quota, 'checkpoints');
  // Storage: refused at the limit, by creates and checkpoints.
  setOrgQuotas(m, 'acme', { checkpoints: null, storage_bytes: 100 });
  new SpriteDocs(m).write('id-b', 'usage', { checkpoints: 0, stored_bytes: 100 });
  assert.equal(refusal(() => quotas.check('acme', 'checkpoint'))?.quota, 'storage_bytes');
  assert.equal(refusal(() => quotas.check('acme', 'create'))?.quota, 'storage_bytes');
  // Another org, and the admin org, keep the defaults.
  assert.equal(refusal(() => quotas.check('admin', 'create')), undefined);
  assert.equal(refusal(() => setOrgQuotas(m, 'nobody', { sprites: 1 }))?.code, 'ERR_ORG_NOT_FOUND');
});

test('actions admitted and not yet in the records count: one peer never passes a limit by itself', () => {
  const m = mesh();
  createOrg(m, 'acme');
  const quotas = new OrgQuotas(m.store, { ...NONE, sprites: 2, checkpoints: 1 });
  const first = quotas.admit('acme', 'create');
  const second = quotas.admit('acme', 'create');
  assert.equal(refusal(() => quotas.admit('acme', 'create'))?.current_count, 2);
  first();
  first();
  // Released twice, counted once: room for exactly one more.
  const third = quotas.admit('acme', 'create');
  assert.equal(refusal(() => quotas.admit('acme', 'create'))?.quota, 'sprites');
  second();
  third();
  assert.deepEqual(quotas.usage('acme'), { sprites: 0, running: 0, checkpoints: 0, storage_bytes: 0 });
  const checkpoint = quotas.admit('acme', 'checkpoint');
  assert.equal(refusal(() => quotas.admit('acme', 'checkpoint'))?.quota, 'checkpoints');
  checkpoint();
});

test('the quota options: every org\'s default, none unless given; sizes for storage', () => {
  assert.deepEqual(buildConfig({ dataDir: '/tmp/x' }).quotas, NONE);
  const flags: Record<string, string[]> = { 'org-max-sprites': ['10'], 'org-max-running': ['0'], 'org-max-storage': ['10GiB'] };
  const options = optionsFromFlags((flag) => flags[flag] ?? []);
  assert.deepEqual(buildConfig({ ...options, dataDir: '/tmp/x' }).quotas, { sprites: 10, running: 0, checkpoints: null, storage_bytes: 10 * 1024 ** 3 });
  assert.throws(() => buildConfig({ dataDir: '/tmp/x', quotas: { checkpoints: -1 } }), /org checkpoint quota must be an integer of at least 0/);
});
