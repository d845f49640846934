import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildConfig } from '../../node/config.ts';
import { parseAddress } from '../../node/option-kinds.ts';

test('defaults fill every option and the result is frozen', () => {
  const config = buildConfig({ dataDir: '/tmp/x' });
  assert.equal(config.api.host, '127.0.0.1');
  assert.equal(config.api.port, 7070);
  assert.equal(config.pool.fallback, 'cold');
  assert.ok(Object.isFrozen(config.pool));
  assert.throws(() => {
    (config.pool as { depth: number }).depth = 5;
  });
});

test('bad options are rejected with the option named', () => {
  assert.throws(() => buildConfig({ poolDepth: -1 }), /pool depth/);
  assert.throws(() => buildConfig({ poolFallback: 'maybe' as 'cold' }), /pool fallback/);
  assert.throws(() => buildConfig({ api: 'nowhere' }), /HOST:PORT/);
  assert.throws(() => buildConfig({ limits: { memoryBytes: 1 } }), /memory/);
  assert.throws(() => buildConfig({ surprise: true } as object), /unknown option surprise/);
});

test('addresses parse with IPv4, names and IPv6', () => {
  assert.deepEqual(parseAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseAddress('[::1]:7070'), { host: '::1', port: 7070 });
  assert.throws(() => parseAddress('localhost:99999'));
});

test('mesh options: multiaddrs and membership timeouts are checked', () => {
  const config = buildConfig({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: ['/ip4/127.0.0.1/tcp/7071/p2p/12D3KooWabc'] });
  assert.deepEqual(config.mesh.listen, ['/ip4/127.0.0.1/tcp/0']);
  assert.ok(config.mesh.downAfterMs > config.mesh.suspectAfterMs);
  assert.throws(() => buildConfig({ bootstrap: ['127.0.0.1:7071'] }), /not a TCP multiaddr/);
  assert.throws(() => buildConfig({ suspectAfterMs: 5000, downAfterMs: 1000 }), /suspect < down/);
});

test('sleep times: defaults, and warm must come before cold', () => {
  const config = buildConfig({});
  assert.deepEqual(config.sleep, { warmAfterMs: 30_000, coldAfterMs: 600_000 });
  assert.deepEqual(buildConfig({ warmSleepAfterMs: 500, coldSleepAfterMs: 2000 }).sleep, { warmAfterMs: 500, coldAfterMs: 2000 });
  assert.throws(() => buildConfig({ warmSleepAfterMs: 5000, coldSleepAfterMs: 5000 }), /warm < cold/);
  assert.throws(() => buildConfig({ warmSleepAfterMs: 0.5 }), /sleep times/);
});

test('base image: debian from the default mirror unless told otherwise; busybox; bad values named', () => {
  assert.deepEqual(buildConfig({ dataDir: '/tmp/x' }).pool.baseImage, { kind: 'debian', suite: 'bookworm', mirror: 'http://deb.debian.org/debian' });
  assert.deepEqual(buildConfig({ baseImage: 'busybox' }).pool.baseImage, { kind: 'busybox' });
  assert.deepEqual(buildConfig({ debianSuite: 'trixie', debianMirror: 'http://127.0.0.1:9/debian' }).pool.baseImage, { kind: 'debian', suite: 'trixie', mirror: 'http://127.0.0.1:9/debian' });
  assert.throws(() => buildConfig({ baseImage: 'alpine' as 'busybox' }), /base image must be debian or busybox/);
  assert.throws(() => buildConfig({ debianSuite: 'Bookworm!' }), /not a Debian suite/);
  assert.throws(() => buildConfig({ debianMirror: 'ftp://mirror' }), /http\(s\) URL/);
});
