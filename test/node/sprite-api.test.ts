import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countStates, pageOf, parseListQuery, type ListQuery } from '../../node/api/sprite-list.ts';
import { watchSprites } from '../../node/api/sprite-watch.ts';
import { parseCreate, parseUpdate } from '../../node/api/sprite-requests.ts';
import type { SpriteRecord, SpriteRegistry } from '../../node/records/index.ts';
import { limitsFor, resourcesFor } from '../../node/sprite-settings.ts';
import { checkSprite, upgradeSprite } from '../../node/sprites/health.ts';
import type { Machine, Machines } from '../../node/sprites/machines.ts';
import { runtimeVersion } from '../../vm/index.ts';

const MiB = 1024 ** 2;

function record(name: string, extra: Partial<SpriteRecord> = {}): SpriteRecord {
  return {
    name, id: `id-${name}`, state: 'running', owner: 'peer-a', epoch: 1, volume: null, org: 'acme', services: [], httpPort: 8080, created: 't', updated: 't',
    urlAuth: 'sprite', labels: [], environment: {}, version: null, lastRunningAt: null, lastWarmingAt: null, ...extra,
  };
}

const query = (text: string): ListQuery => parseListQuery(new URL(`http://peer/v1/sprites?${text}`));
const everyone = (): boolean => true;

test('pages follow names, not positions: sprites made or destroyed between pages never repeat or skip one that stayed', () => {
  const names = new Set(Array.from({ length: 1000 }, (_, i) => `s-${String(i).padStart(4, '0')}`));
  const sorted = (): SpriteRecord[] => [...names].sort().map((name) => record(name));
  const stayed = new Set(names);
  const seen: string[] = [];
  let token: string | null = null;
  let round = 0;
  do {
    const page = pageOf(sorted(), query(`max_results=37${token ? `&continuation_token=${token}` : ''}`), everyone);
    assert.ok(page.records.length <= 37);
    seen.push(...page.records.map((r) => r.name));
    token = page.next;
    // Meanwhile: a sprite before the cursor and one after it go, new ones appear on both sides.
    round += 1;
    for (const name of [`s-${String(round * 13).padStart(4, '0')}`, `s-${String(999 - round * 7).padStart(4, '0')}`]) {
      names.delete(name);
      stayed.delete(name);
    }
    names.add(`s-${String(round * 11).padStart(4, '0')}x`);
    names.add(`s-${String(999 - round * 5).padStart(4, '0')}y`);
  } while (token !== null);
  assert.equal(new Set(seen).size, seen.length, 'no sprite twice');
  for (const name of stayed) assert.ok(seen.includes(name), `${name} listed`);
  assert.deepEqual(seen, [...seen].sort(), 'in name order');
});

test('a page holds only what the caller sees under the prefix; the counts are the org\'s whatever the prefix', () => {
  const records = [
    record('a-1'), record('a-2', { state: 'warm' }), record('a-3', { org: 'globex' }), record('b-1', { state: 'cold' }), record('b-2', { state: 'stopped' }),
  ];
  const acme = (r: SpriteRecord): boolean => r.org === 'acme';
  const first = pageOf(records, query('prefix=a-&max_results=1'), acme);
  assert.deepEqual(first.records.map((r) => r.name), ['a-1']);
  const second = pageOf(records, query(`prefix=a-&max_results=1&continuation_token=${first.next}`), acme);
  assert.deepEqual([second.records.map((r) => r.name), second.next], [['a-2'], null], 'no empty last page: a-3 is not acme\'s');
  assert.deepEqual(countStates(records, acme), { running: 1, warm: 1, cold: 1 });
  assert.equal(query('max_results=500').maxResults, 50, 'a bigger page is read as the largest');
  for (const bad of ['max_results=0', 'max_results=x', 'max_results=-1', 'prefix=UP', 'continuation_token=zzz', `continuation_token=${Buffer.from('after:Bad!').toString('base64url')}`]) {
    assert.throws(() => query(bad), { code: 'ERR_BAD_REQUEST' }, bad);
  }
});

test('create and update bodies: Sprites\' fields read, labels and environment checked, what cannot be honoured refused', () => {
  const body = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
  assert.deepEqual(parseCreate(body({
    name: 'web', config: { ram_mb: 256, cpus: 0.5 }, environment: { A: 'b' }, url_settings: { auth: 'public', private_access: 'org_users' }, labels: ['x', 'x', 'y'], wait_for_capacity: true, runtime: 'default',
  }), 'acme'), {
    name: 'web', org: 'acme', waitForCapacity: true, config: { ramMb: 256, cpus: 0.5, region: undefined, storageGb: undefined }, environment: { A: 'b' }, labels: ['x', 'y'], urlAuth: 'public',
  });
  const refused = [
    { name: 'web', labels: ['has space'] }, { name: 'web', labels: Array.from({ length: 33 }, (_, i) => `l${i}`) }, { name: 'web', labels: ['-lead'] },
    { name: 'web', environment: { '1X': 'y' } }, { name: 'web', environment: { A: 'nul\0' } }, { name: 'web', url_settings: { private_access: 'admins' } },
    { name: 'web', url_settings: { auth: 'open' } }, { name: 'web', runtime: 'dev' }, { name: 'web', config: { cpus: 'two' } }, { name: 'web', config: { disk: 1 } },
  ];
  for (const value of refused) assert.throws(() => parseCreate(body(value), 'acme'), { code: 'ERR_BAD_REQUEST' }, JSON.stringify(value));
  assert.throws(() => parseCreate(body({ name: 'Bad!' }), 'acme'), { code: 'ERR_BAD_NAME' });
  assert.deepEqual(parseUpdate(body({ labels: [] })), { labels: [] });
  assert.deepEqual(parseUpdate(body({ url_settings: { auth: 'sprite' } })), { urlAuth: 'sprite' });
  assert.throws(() => parseUpdate(body({})), { code: 'ERR_BAD_REQUEST' });
  assert.throws(() => parseUpdate(body({ name: 'other' })), { code: 'ERR_BAD_REQUEST' });
});

test('memory and CPUs: the peer\'s limits are the default and the most; region and disk size cannot be chosen', () => {
  const max = { memoryBytes: 1024 * MiB, cpus: 2, pids: 100 };
  assert.deepEqual(resourcesFor({}, max), { ramMb: 1024, cpus: 2 });
  assert.deepEqual(resourcesFor({ ramMb: 256, cpus: 0.5, storageGb: 100 }, max), { ramMb: 256, cpus: 0.5 });
  for (const config of [{ ramMb: 2048 }, { ramMb: 8 }, { cpus: 3 }, { cpus: 0.001 }, { region: 'ord' }, { storageGb: 10 }]) {
    assert.throws(() => resourcesFor(config, max), { code: 'ERR_BAD_REQUEST' }, JSON.stringify(config));
  }
  // A sprite made on a bigger peer gets what this one offers.
  assert.deepEqual(limitsFor({ ramMb: 4096, cpus: 1 }, max), { memoryBytes: 1024 * MiB, cpus: 1, pids: 100 });
  assert.deepEqual(limitsFor({}, max), max);
});

/** Machines with one sprite `web`, running in `machine` (or not at all). */
function machinesWith(machine: Partial<Machine> | undefined, state: SpriteRecord['state'] = 'running'): Pick<Machines, 'owned' | 'running'> {
  return { owned: () => record('web', { state }), running: () => machine as Machine | undefined };
}

test('check asks sprite-init and never wakes a sprite without a sandbox', async () => {
  const answering = (answer: unknown) => ({ sandbox: { control: { call: async () => answer } } }) as unknown as Partial<Machine>;
  assert.equal((await checkSprite(machinesWith(answering({ running: true })), 'web')).status, 'healthy');
  assert.equal((await checkSprite(machinesWith(answering({ running: false })), 'web')).status, 'unhealthy');
  const silent = { sandbox: { control: { call: async () => { throw new Error('no answer'); } } } } as unknown as Partial<Machine>;
  assert.match((await checkSprite(machinesWith(silent), 'web')).reason ?? '', /did not answer: no answer/);
  assert.deepEqual(await checkSprite(machinesWith(undefined, 'cold'), 'web'), { status: 'not_running', reason: 'sprite web is cold: it has no sandbox until it starts', elapsedMs: 0 });
});

test('upgrade puts a warm sprite on an older runtime to cold sleep, and leaves current and awake ones alone', async () => {
  const current = await runtimeVersion();
  assert.match(current, /^[0-9a-f]{12}$/);
  const slept: string[] = [];
  const lifecycle = { sleepCold: async (name: string) => Boolean(slept.push(name)) };
  const machine = (version: string, frozen: boolean) => ({ version, sandbox: { frozen } }) as unknown as Partial<Machine>;
  assert.equal(await upgradeSprite(machinesWith(machine(current, true)), lifecycle, 'web'), false);
  assert.equal(await upgradeSprite(machinesWith(machine('000000000000', false)), lifecycle, 'web'), true);
  assert.deepEqual(slept, [], 'an awake sprite keeps its sandbox until its next start');
  assert.equal(await upgradeSprite(machinesWith(machine('000000000000', true)), lifecycle, 'web'), true);
  assert.deepEqual(slept, ['web']);
  assert.equal(await upgradeSprite(machinesWith(undefined, 'cold'), lifecycle, 'web'), false, 'its next start runs the current one anyway');
});

test('the watch stream: a snapshot, a heartbeat, then only changes of what the caller sees, with the org\'s counts', () => {
  const records = new Map([['a-1', record('a-1')], ['a-2', record('a-2', { state: 'cold' })], ['g-1', record('g-1', { org: 'globex' })]]);
  let listener: (name: string, gone: boolean) => void = () => undefined;
  let unwatched = false;
  const registry: Pick<SpriteRegistry, 'list' | 'get' | 'watch'> = {
    list: () => [...records.values()],
    get: (name) => records.get(name),
    watch: (fn) => {
      listener = fn;
      return () => (unwatched = true);
    },
  };
  const lines: string[] = [];
  const closers: (() => void)[] = [];
  const res = {
    writableLength: 0,
    writeHead: () => undefined,
    write: (line: string) => lines.push(line),
    destroy: () => undefined,
    once: (_event: string, fn: () => void) => closers.push(fn),
  };
  watchSprites(res as never, { registry, visible: (r) => r.org === 'acme', org: 'acme', query: query('prefix=a-') });
  const events = (): Record<string, any>[] => lines.splice(0).map((line) => JSON.parse(line));
  const first = events();
  assert.deepEqual(first.map((e) => [e.name ?? e.type, e.status]), [['a-1', 'running'], ['a-2', 'cold'], ['heartbeat', undefined]]);
  assert.deepEqual(first[2]!.org, { name: 'acme', running: 1, warm: 0, cold: 1 });

  records.set('g-1', record('g-1', { org: 'globex', state: 'stopped' }));
  listener('g-1', false);
  records.set('a-1', record('a-1', { updated: 'later' }));
  listener('a-1', false);
  assert.deepEqual(events(), [], "another org's change and a change that is no state change send nothing");

  records.set('a-1', record('a-1', { state: 'warm', lastWarmingAt: '2026-01-01T00:00:00.000Z' }));
  listener('a-1', false);
  records.delete('a-2');
  listener('a-2', true);
  const changes = events();
  assert.deepEqual(changes.map((e) => [e.name, e.status, e.org.warm, e.org.cold]), [['a-1', 'warm', 1, 1], ['a-2', 'deleted', 1, 0]]);
  assert.equal(changes[0]!.last_warming_at, '2026-01-01T00:00:00.000Z');
  for (const close of closers) close();
  assert.ok(unwatched, 'the stream stops following the records when it closes');
});
