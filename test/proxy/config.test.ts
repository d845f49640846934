import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { buildConfig } from '../../node/config.ts';
import { ERROR_CODES } from '../../node/errors.ts';
import { HOP_TTL_MS, HopSigner, PROXY_ERROR_CODES, spriteFromHost, spriteHost } from '../../proxy/index.ts';
import { stripHopByHop } from '../../proxy/headers.ts';

test('the proxy section has loopback defaults and checks domain and TLS files', () => {
  const config = buildConfig({ dataDir: '/tmp/x' });
  assert.deepEqual(config.proxy.http, { host: '127.0.0.1', port: 7480 });
  assert.deepEqual(config.proxy.https, { host: '127.0.0.1', port: 7443 });
  assert.equal(config.proxy.domain, 'sprites.localhost');
  assert.ok(Object.isFrozen(config.proxy));
  const files = buildConfig({ dataDir: '/tmp/x', proxyHttps: '0.0.0.0:443', domain: 'sprites.example.com', tlsCert: 'c.pem', tlsKey: 'k.pem' });
  assert.equal(files.proxy.https.port, 443);
  assert.match(files.proxy.tlsCert!, /^\/.*c\.pem$/);
  assert.throws(() => buildConfig({ domain: 'Sprites.Example' }), /domain must be lowercase DNS labels/);
  assert.throws(() => buildConfig({ domain: 'a..b' }), /domain/);
  assert.throws(() => buildConfig({ tlsCert: 'c.pem' }), /give both or neither/);
  assert.throws(() => buildConfig({ proxyHttp: 'nowhere' }), /HOST:PORT/);
});

test('every proxy error code is an API error code and is documented in docs/ERRORS.md', async () => {
  const docs = await readFile(new URL('../../docs/ERRORS.md', import.meta.url), 'utf8');
  for (const [code, { status }] of Object.entries(PROXY_ERROR_CODES)) {
    assert.equal(ERROR_CODES[code as keyof typeof ERROR_CODES].status, status, code);
    assert.match(docs, new RegExp(`^\\| \`${code}\` \\| ${status} \\|`, 'm'), code);
  }
});

test('host parsing: one label under the domain, port and case ignored', () => {
  assert.equal(spriteFromHost('Web.Sprites.Localhost:7443', 'sprites.localhost'), 'web');
  assert.equal(spriteFromHost('web.sprites.localhost.', 'sprites.localhost'), 'web');
  for (const bad of [undefined, '', 'sprites.localhost', 'a.b.sprites.localhost', '[::1]:80', 'web.sprites.localhost:x', 'web_1.sprites.localhost', 'xsprites.localhost']) {
    assert.throws(() => spriteFromHost(bad, 'sprites.localhost'), { code: 'ERR_PROXY_BAD_HOST' }, String(bad));
  }
  assert.equal(spriteHost('web', 'example.com', 443, 'https'), 'web.example.com');
  assert.equal(spriteHost('web', 'example.com', 7443, 'https'), 'web.example.com:7443');
});

test('hop headers: bound to the sending peer, the sprite and a short expiry; refused when forged, replayed late, moved or malformed', () => {
  const a = new HopSigner('secret', 'peer-a');
  const b = new HopSigner('secret', 'peer-b');
  const now = Date.now();
  const header = a.header('web', now);
  assert.deepEqual(b.verify(header, 'peer-a', now), { peer: 'peer-a', sprite: 'web' });
  // Only over a link whose certificate names the signer.
  assert.equal(b.verify(header, 'peer-c', now), undefined);
  // Another secret (not the mesh's swarm key) signs nothing.
  assert.equal(b.verify(new HopSigner('other', 'peer-a').header('web', now), 'peer-a', now), undefined);
  // Expired: a captured header is worthless after HOP_TTL_MS.
  assert.equal(b.verify(header, 'peer-a', now + HOP_TTL_MS + 1), undefined);
  assert.equal(new HopSigner('secret', 'peer-b').verify(header, 'peer-a', now + HOP_TTL_MS + 1), undefined);
  // Another sprite (or expiry) under the same MAC: refused.
  const [peer, , expiry, mac] = header.split(' ');
  assert.equal(new HopSigner('secret', 'peer-b').verify(`${peer} other ${expiry} ${mac}`, 'peer-a', now), undefined);
  assert.equal(new HopSigner('secret', 'peer-b').verify(`${peer} web ${Number(expiry) + 60_000} ${mac}`, 'peer-a', now), undefined);
  // A far-future expiry, even signed, is refused.
  assert.equal(b.verify(a.header('far', now + 3_600_000), 'peer-a', now), undefined);
  for (const bad of ['', 'peer-a web', `peer-a web ${now} ${'0'.repeat(64)}`, `${header} extra`, ['x']]) assert.equal(b.verify(bad as string, 'peer-a', now), undefined);
});

test('hop-by-hop headers go, including those named by Connection; an upgrade keeps what the next hop needs', () => {
  const headers: Record<string, string> = { connection: 'keep-alive, X-Secret', 'x-secret': '1', 'keep-alive': 'timeout=5', te: 'trailers', upgrade: 'websocket', 'x-kept': 'yes' };
  stripHopByHop(headers);
  assert.deepEqual(headers, { 'x-kept': 'yes' });
  const upgrade: Record<string, string> = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'k' };
  stripHopByHop(upgrade, true);
  assert.deepEqual(upgrade, { connection: 'upgrade', upgrade: 'websocket', 'sec-websocket-key': 'k' });
});
