import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { edgeCerts } from '../../node/records/index.ts';
import { proxyCertsTable } from '../../node/records/tables.ts';
import { CertSource, generateMeshCert, parseBundle, type EdgeProxy } from '../../proxy/index.ts';
import { eventually } from '../helpers/peer.ts';
import { FakeMesh, FakeSprites, portOf, putSprite, request, startTwoProxies, tempDir, testProxy, TOKEN, type TwoProxies } from './helpers.ts';

const AUTH = { authorization: `Bearer ${TOKEN}` };
const HTTPS = { host: '127.0.0.1', port: 0 };
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe('HTTPS with the mesh CA', () => {
  let fixture: TwoProxies;
  let edge: EdgeProxy;
  let owner: EdgeProxy;
  let edgeMesh: FakeMesh;
  let edgeTls = 0;
  let ownerTls = 0;

  before(async () => {
    fixture = await startTwoProxies({ edge: { https: HTTPS }, owner: { https: HTTPS } });
    ({ edge, owner, edgeMesh } = fixture);
    edgeTls = portOf(fixture.edgeAddress.https);
    ownerTls = portOf(fixture.ownerAddress.https);
    fixture.ownerSprites.sockets.set('app', (await fixture.app('app')).socketPath);
    putSprite(fixture.both, { name: 'app', owner: 'peer-owner' });
  });
  after(() => fixture?.stop());

  test('the first peer makes a CA restricted to the domain and a wildcard certificate; every peer serves the same one', () => {
    const ca = new X509Certificate(edge.ca()!);
    assert.equal(owner.ca(), edge.ca());
    assert.ok(ca.ca);
    const bundle = JSON.parse(edgeMesh.store.get(proxyCertsTable, { domain: 'sprites.localhost' })!.bundle) as { cert: string; key: string };
    const leaf = new X509Certificate(bundle.cert);
    assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
    assert.equal(leaf.subjectAltName, 'DNS:*.sprites.localhost, DNS:sprites.localhost');
    // The CA's key travels with the bundle (only among holders of the swarm key) so any peer can renew.
    assert.deepEqual(Object.keys(bundle).sort(), ['ca', 'caKey', 'cert', 'key']);
    assert.ok(ca.checkPrivateKey(createPrivateKey((bundle as { cert: string; key: string; caKey: string }).caKey)));
  });

  test('HTTPS through two hops, verified with the mesh CA (HTTP/1.1)', async () => {
    const answer = await request(edgeTls, 'app.sprites.localhost', '/headers', { headers: AUTH, tls: { ca: edge.ca()! } });
    assert.equal(answer.status, 200);
    const seen = JSON.parse(answer.body) as Record<string, string>;
    assert.equal(seen['x-forwarded-proto'], 'https');
    const direct = await request(ownerTls, 'app.sprites.localhost', '/', { headers: AUTH, tls: { ca: edge.ca()! } });
    assert.equal(direct.body, 'hello from app');
  });

  test('HTTP/2 is negotiated by ALPN, and streams answer through two hops', async () => {
    const session = http2.connect(`https://127.0.0.1:${edgeTls}`, { ca: edge.ca()!, servername: 'app.sprites.localhost' });
    try {
      await new Promise((resolve, reject) => session.once('connect', resolve).once('error', reject));
      assert.equal(session.alpnProtocol, 'h2');
      const get = (path: string): Promise<{ status: number; body: string }> => new Promise((resolve, reject) => {
        const stream = session.request({ ':path': path, ':authority': 'app.sprites.localhost', ...AUTH });
        let status = 0;
        let body = '';
        stream.on('response', (headers) => (status = Number(headers[':status'])));
        stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
        stream.on('end', () => resolve({ status, body }));
        stream.on('error', reject);
      });
      const answers = await Promise.all([get('/'), get('/sse'), get('/hop-by-hop'), get('/nope')]);
      assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200]);
      assert.equal(answers[0]!.body, 'hello from app');
      assert.match(answers[1]!.body, /data: tick 2/);
    } finally {
      session.close();
    }
  });

  test('a secure WebSocket (HTTP/1.1 upgrade on the TLS port) echoes through two hops', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${edgeTls}/`, { headers: { host: 'app.sprites.localhost', ...AUTH }, ca: edge.ca()!, servername: 'app.sprites.localhost' } as WebSocket.ClientOptions);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send('secure');
    const reply = await new Promise<string>((resolve) => ws.once('message', (data) => resolve(data.toString())));
    assert.equal(reply, 'secure');
    ws.close();
  });
});

describe('certificate sources', () => {
  test('when two peers made a certificate at once, both end up serving the one the store keeps', async () => {
    const one = new FakeMesh('one');
    const two = new FakeMesh('two');
    const a = new CertSource({ domain: 'sprites.localhost' }, { store: edgeCerts(one), logger: silent });
    const b = new CertSource({ domain: 'sprites.localhost' }, { store: edgeCerts(two), logger: silent });
    await Promise.all([a.start(), b.start()]);
    assert.notEqual(a.ca(), b.ca());
    // Exchange the rows as anti-entropy would: the store's merge picks one winner on both sides.
    one.store.apply([...two.store.changesFor(two.store.siteId, 1, 100)]);
    two.store.apply([...one.store.changesFor(one.store.siteId, 1, 100)]);
    await eventually(() => a.ca() === b.ca(), 5000, 'both sources to agree');
    assert.equal(a.bundle()!.cert, b.bundle()!.cert);
    a.stop();
    b.stop();
  });

  test('a certificate and key from files are served as given, and there is no CA to print', async () => {
    const { dir, remove } = await tempDir();
    const mesh = new FakeMesh('files');
    const made = await generateMeshCert('example.test');
    await writeFile(join(dir, 'cert.pem'), made.cert);
    await writeFile(join(dir, 'key.pem'), made.key);
    const proxy = testProxy(mesh, new FakeSprites(), { https: HTTPS, domain: 'example.test', tlsFiles: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') } });
    try {
      const address = await proxy.start();
      assert.equal(proxy.ca(), null);
      assert.equal(mesh.store.all(proxyCertsTable).length, 0, 'nothing written to the mesh');
      // No sprite x, and no credential: answered like a private sprite would be.
      const answer = await request(portOf(address.https), 'x.example.test', '/', { tls: { ca: made.ca! } });
      assert.equal(answer.status, 401);
      assert.equal(answer.headers['x-sprite-error'], 'ERR_PROXY_UNAUTHORIZED');
    } finally {
      await proxy.stop();
      await remove();
    }
  });
});

describe('certificate renewal', () => {
  /** The certificate a real TLS client gets from a proxy, verified against the mesh CA. */
  const served = (port: number, ca: string): Promise<X509Certificate> => new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'app.sprites.localhost' }, () => {
      const cert = socket.getPeerX509Certificate()!;
      socket.end();
      resolve(cert);
    });
    socket.on('error', reject);
  });

  test('the mesh certificate is renewed with a third of its lifetime left, and every peer serves the new one without a restart', async () => {
    // Renewal is due 4 s after issue; the edge makes the first certificate and the owner adopts it.
    const fixture = await startTwoProxies({ edge: { https: HTTPS, certLifetimeMs: 6000 }, owner: { https: HTTPS, certLifetimeMs: 6000 } });
    try {
      fixture.edgeMesh.link(fixture.ownerMesh);
      fixture.ownerMesh.link(fixture.edgeMesh);
      fixture.ownerSprites.sockets.set('app', (await fixture.app('app')).socketPath);
      putSprite(fixture.both, { name: 'app', owner: 'peer-owner' });
      const ca = fixture.edge.ca()!;
      const ports = [portOf(fixture.edgeAddress.https), portOf(fixture.ownerAddress.https)];
      const first = await Promise.all(ports.map((port) => served(port, ca)));
      assert.equal(first[0]!.serialNumber, first[1]!.serialNumber);
      const renewed = await eventually(async () => {
        const now = await Promise.all(ports.map((port) => served(port, ca)));
        return now.every((cert) => cert.serialNumber !== first[0]!.serialNumber) ? now : undefined;
      }, 30_000, 'both proxies to serve a renewed certificate');
      // One certificate mesh-wide, signed by the same CA (clients keep trusting it), and later than the first.
      assert.equal(renewed[0]!.serialNumber, renewed[1]!.serialNumber);
      assert.ok(Date.parse(renewed[0]!.validTo) > Date.parse(first[0]!.validTo));
      assert.equal(fixture.edge.ca(), ca);
      assert.equal(fixture.owner.ca(), ca);
      const row = parseBundle(fixture.ownerMesh.store.get(proxyCertsTable, { domain: 'sprites.localhost' })!.bundle)!;
      assert.equal(new X509Certificate(row.cert).serialNumber, renewed[0]!.serialNumber);
      // Same listeners as before the renewal: a request through two hops over the new certificate.
      const answer = await request(ports[0]!, 'app.sprites.localhost', '/', { headers: AUTH, tls: { ca } });
      assert.equal(answer.body, 'hello from app');
    } finally {
      await fixture.stop();
    }
  });
});
