import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MESH_DEFAULTS } from '../../gossip/index.ts';
import { parseArgs } from '../../node/cli/args.ts';
import type { Context } from '../../node/cli/command.ts';
import { loadConfig } from '../../node/cli/config.ts';
import { peerStartCommand } from '../../node/cli/peer-start.ts';
import { buildConfig } from '../../node/config.ts';
import { defaultDataDir } from '../../node/defaults.ts';
import { optionHelp, readmeTable, withReadmeTable } from '../../node/options-doc.ts';
import { listOptions, optionsFromFlags } from '../../node/options.ts';
import { PROXY_DEFAULTS } from '../../proxy/index.ts';
import { DEVICE_DEFAULTS, VM_DEFAULTS, VOLUMES_DEFAULTS } from '../../vm/index.ts';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** Options from a `sprite peer start` command line, through the CLI's own flag parser. */
function fromArgv(argv: string[]): ReturnType<typeof optionsFromFlags> {
  const args = parseArgs(argv, peerStartCommand.spec);
  return optionsFromFlags((flag) => args.list(flag));
}

test('flags become options: sizes, seconds, decimals, lists and groups; unset flags stay unset', () => {
  const options = fromArgv([
    '--pool-depth', '3', '--pool-concurrency', '2', '--capacity', '7', '--sprite-memory', '512MiB', '--sprite-cpus', '0.5', '--sprite-pids', '64',
    '--sprite-http-port', '9090', '--warm-sleep-after', '1.5', '--cold-sleep-after', '60', '--listen', '/ip4/127.0.0.1/tcp/0', '--listen', '/ip6/::1/tcp/0',
    '--cache-bytes', '20GiB', '--soft-dirty-bytes', '1G', '--hard-dirty-bytes', '2147483648', '--storage-mode', 'relaxed', '--sync-interval-ms', '500',
    '--mesh-connections', '3', '--pool-depth', '4',
  ]);
  assert.deepEqual(options, {
    poolDepth: 4, poolConcurrency: 2, capacity: 7, limits: { memoryBytes: 512 * MiB, cpus: 0.5, pids: 64 }, httpPort: 9090,
    warmSleepAfterMs: 1500, coldSleepAfterMs: 60_000, listen: ['/ip4/127.0.0.1/tcp/0', '/ip6/::1/tcp/0'],
    cacheBytes: 20 * GiB, softDirtyBytes: GiB, hardDirtyBytes: 2 * GiB, storageMode: 'relaxed', syncIntervalMs: 500, meshConnections: 3,
  });
  assert.deepEqual(fromArgv([]), {});
  assert.throws(() => parseArgs(['--no-such-flag', '1'], peerStartCommand.spec), /unknown flag '--no-such-flag'/);
});

test('bad flag values: one line naming the flag, what it takes and what it got', () => {
  const cases: [string[], RegExp][] = [
    [['--pool-depth', 'x'], /^--pool-depth must be a whole number, got 'x'$/],
    [['--pool-fallback', 'maybe'], /^--pool-fallback must be cold or fail, got 'maybe'$/],
    [['--egress-default-policy', 'open'], /^--egress-default-policy must be allow-all or defaults or deny-all, got 'open'$/],
    [['--image', 'alpine'], /^--image must be debian or busybox, got 'alpine'$/],
    [['--suspect-after-ms', '1.5'], /^--suspect-after-ms must be a whole number of milliseconds, got '1.5'$/],
    [['--warm-sleep-after', 'soon'], /^--warm-sleep-after must be a number of seconds, got 'soon'$/],
    [['--image-max-bytes', '1MB'], /^--image-max-bytes must be a whole number of bytes or a size like 512MiB, got '1MB'$/],
    [['--sprite-cpus', 'two'], /^--sprite-cpus must be a number like 0.5 or 2, got 'two'$/],
    [['--storage-mode', 'fast'], /^--storage-mode must be strict or relaxed, got 'fast'$/],
  ];
  for (const [argv, message] of cases) assert.throws(() => fromArgv(argv), { message }, argv.join(' '));
});

test('peer start turns a bad flag into a usage error before loading the peer', async () => {
  const args = parseArgs(['--capacity', 'lots'], peerStartCommand.spec);
  const ctx = { args, positionals: [] } as unknown as Context;
  await assert.rejects(peerStartCommand.run(ctx), { name: 'UsageError', message: "--capacity must be a whole number, got 'lots'" });
});

test('values out of range are named by the option, with the value given', () => {
  assert.throws(() => buildConfig({ poolConcurrency: 9 }), /^Error: pool concurrency must be an integer from 1 to 8, got 9$/);
  assert.throws(() => buildConfig({ capacity: -1 }), /capacity must be an integer of at least 0/);
  assert.throws(() => buildConfig({ limits: { cpus: 0 } }), /cpu limit must be more than 0 and at most 64, got 0/);
  assert.throws(() => buildConfig({ limits: { pids: 8 } }), /pids limit must be an integer of at least 16/);
  assert.throws(() => buildConfig({ limits: { memoryBytes: 8 * MiB } }), /memory limit must be a whole number of bytes, at least 16 MiB, got 8388608/);
  assert.throws(() => buildConfig({ httpPort: 70_000 }), /sprite http port must be an integer from 1 to 65535/);
  assert.throws(() => buildConfig({ cacheBytes: MiB }), /cache budget must be a whole number of bytes, at least 64 MiB/);
  assert.throws(() => buildConfig({ softDirtyBytes: 3 * GiB, hardDirtyBytes: 2 * GiB }), /soft dirty limit must not be above the hard one/);
  assert.throws(() => buildConfig({ syncIntervalMs: 10 }), /sync interval must be whole milliseconds, at least 100/);
  assert.throws(() => buildConfig({ poolDepth: '2' as unknown as number }), /pool depth must be an integer from 0 to 64, got 2/);
  assert.throws(() => buildConfig({ listen: '/ip4/127.0.0.1/tcp/0' as unknown as string[] }), /listen addresses must be a list of multiaddr strings/);
  assert.throws(() => buildConfig({ dataDir: '' }), /data dir must be a path/);
});

test('unknown keys are rejected at every level', () => {
  assert.throws(() => buildConfig({ surprise: 1 } as object), /^Error: unknown option surprise$/);
  assert.throws(() => buildConfig({ limits: { swap: 1 } } as object), /^Error: unknown option limits.swap$/);
  assert.throws(() => buildConfig({ limits: 5 } as object), /option limits must be an object/);
  assert.throws(() => buildConfig({ toString: 1 } as object), /unknown option toString/);
  assert.throws(() => buildConfig(null as unknown as object), /must be an object/);
});

test('the frozen config: defaults come from the units that own them, new options reach their sections', () => {
  const config = buildConfig({ dataDir: '/tmp/x' });
  assert.deepEqual(config.sprite.limits, VM_DEFAULTS.limits);
  assert.equal(config.storage.imageMaxBytes, VM_DEFAULTS.imageMaxBytes);
  assert.equal(config.storage.cacheBytes, VOLUMES_DEFAULTS.cacheBytes);
  assert.deepEqual(config.storage.device, { mode: DEVICE_DEFAULTS.mode, softDirtyBytes: DEVICE_DEFAULTS.softDirtyBytes, hardDirtyBytes: DEVICE_DEFAULTS.hardDirtyBytes });
  assert.deepEqual(config.proxy.https, PROXY_DEFAULTS.https);
  assert.equal(config.mesh.syncIntervalMs, MESH_DEFAULTS.syncIntervalMs);
  assert.equal(config.mesh.connections, MESH_DEFAULTS.connections);
  assert.equal(config.mesh.heartbeatMs, MESH_DEFAULTS.heartbeatMs);
  assert.equal(config.proxy.certWaitMs, 0);
  assert.equal(config.storage.objectStore, 'file:///tmp/x/objects');
  // The config holds copies: freezing it leaves the units' defaults alone.
  assert.ok(Object.isFrozen(config.proxy.http) && !Object.isFrozen(PROXY_DEFAULTS.http));

  const tuned = buildConfig({
    dataDir: 'relative', capacity: 5, poolConcurrency: 3, httpPort: 9090, egressDefaultPolicy: 'defaults', limits: { memoryBytes: 512 * MiB }, cacheBytes: GiB,
    storageMode: 'relaxed', suspectAfterMs: 600, downAfterMs: 2000, syncIntervalMs: 250, meshConnections: 2,
    bootstrap: ['/ip4/127.0.0.1/tcp/7071/p2p/12D3KooWabc'],
  });
  assert.equal(tuned.dataDir, join(process.cwd(), 'relative'));
  assert.deepEqual(tuned.sprite, { capacity: 5, limits: { ...VM_DEFAULTS.limits, memoryBytes: 512 * MiB }, httpPort: 9090, rootHostId: 100_000, egressDefaultPolicy: 'defaults' });
  assert.equal(tuned.pool.concurrency, 3);
  assert.equal(tuned.storage.cacheBytes, GiB);
  assert.equal(tuned.storage.device.mode, 'relaxed');
  assert.deepEqual([tuned.mesh.heartbeatMs, tuned.mesh.syncIntervalMs, tuned.mesh.connections], [200, 250, 2]);
  assert.equal(tuned.proxy.certWaitMs, 10_000);
  for (const section of [tuned.sprite, tuned.sprite.limits, tuned.storage.device, tuned.mesh, tuned.mesh.bootstrap]) assert.ok(Object.isFrozen(section));
});

test('every option has a unique kebab-case flag, a label and a one-line doc; help lists each with its default', () => {
  const options = listOptions();
  const flags = options.map(({ option }) => option.flag);
  assert.equal(new Set(flags).size, flags.length, 'flags are unique');
  assert.deepEqual(Object.keys(peerStartCommand.spec.flags).sort(), [...flags].sort());
  const help = optionHelp().join('\n');
  for (const { path, option } of options) {
    assert.match(option.flag, /^[a-z]+(-[a-z]+)*$/, path.join('.'));
    assert.ok(option.label.length > 0, path.join('.'));
    assert.ok(option.doc.length > 0 && !option.doc.includes('\n'), path.join('.'));
    assert.match(help, new RegExp(`^  --${option.flag} \\S+  \\(default .+\\)$`, 'm'), option.flag);
  }
  // The flags every test and script starts peers with are still there.
  for (const flag of ['data-dir', 'api', 'listen', 'bootstrap', 'swarm-key', 'pool-depth', 'pool-fallback', 'image', 'proxy-http', 'proxy-https', 'suspect-after-ms', 'down-after-ms', 'warm-sleep-after', 'cold-sleep-after']) {
    assert.ok(flags.includes(flag), flag);
  }
});

test("README.md's configuration table is the one the option table generates", async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  assert.ok(readme.includes(readmeTable()), 'run: node scripts/readme-options.ts');
  assert.equal(withReadmeTable(readme), readme, 'run: node scripts/readme-options.ts');
});

test("the CLI's defaults are the peer's: API URL from its API address, one data dir rule", () => {
  const config = loadConfig({ SPRITE_DATA_DIR: '/nonexistent/sprite-options-test' });
  const api = buildConfig({}).api;
  assert.equal(config.api, `http://${api.host}:${api.port}`);
  assert.equal(config.tokenPath, '/nonexistent/sprite-options-test/token');
  assert.equal(defaultDataDir({}), join(homedir(), '.sprite'));
  assert.equal(defaultDataDir({ SPRITE_DATA_DIR: '' }), join(homedir(), '.sprite'));
});
