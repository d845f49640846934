import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { HopSigner, type EdgeProxy } from '../../proxy/index.ts';
import { FakeMesh, FakeSprites, portOf, putPeer, putSprite, request, startApp, startTwoProxies, tempDir, testProxy, TOKEN, type SpriteApp, type TwoProxies } from './helpers.ts';
import { eventually } from '../helpers/peer.ts';
import { tokensTable } from '../../node/records/tables.ts';
import { tokenHash } from '../../node/records/index.ts';

const AUTH = { authorization: `Bearer ${TOKEN}` };

describe('routing between two proxies', () => {
  let fixture: TwoProxies;
  let edgeMesh: FakeMesh;
  let both: FakeMesh[];
  let edgeSprites: FakeSprites;
  let edge: EdgeProxy;
  let owner: EdgeProxy;
  let edgePort = 0;
  let ownerPort = 0;
  const apps: SpriteApp[] = [];

  before(async () => {
    fixture = await startTwoProxies({ owner: { upstreamIdleMs: 300 } });
    ({ edgeMesh, both, edgeSprites, edge, owner, edgePort, ownerPort } = fixture);
    for (const name of ['app', 'local', 'pub']) apps.push(await fixture.app(name));
    fixture.ownerSprites.sockets.set('app', apps[0]!.socketPath);
    edgeSprites.sockets.set('local', apps[1]!.socketPath);
    fixture.ownerSprites.sockets.set('pub', apps[2]!.socketPath);
    putPeer(both, 'peer-down', 'http://127.0.0.1:1');
    putPeer(both, 'peer-gone', null);
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as net.AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    putPeer(both, 'peer-refusing', `http://127.0.0.1:${closedPort}`);
    putSprite(both, { name: 'app', owner: 'peer-owner' });
    putSprite(both, { name: 'local', owner: 'peer-edge' });
    putSprite(both, { name: 'pub', owner: 'peer-owner', url_auth: 'public' });
    putSprite(both, { name: 'ghost', owner: 'peer-down' });
    putSprite(both, { name: 'lost', owner: 'peer-gone' });
    putSprite(both, { name: 'refused', owner: 'peer-refusing' });
    putSprite(both, { name: 'broken', owner: 'peer-edge', state: 'failed', reason: 'sprite-init exited' });
    putSprite(both, { name: 'nothing', owner: 'peer-edge' });
    putSprite(both, { name: 'acme', owner: 'peer-edge', org: 'acme' });
    edgeSprites.sockets.set('acme', apps[1]!.socketPath);
    edgeSprites.sockets.set('nothing', `${fixture.dir}/nobody-listens.sock`);
    edgeMesh.setState('peer-down', 'down');
  });
  after(() => fixture?.stop());

  test('a sprite on this peer answers through its socket', async () => {
    const answer = await request(edgePort, 'local.sprites.localhost', '/', { headers: AUTH });
    assert.equal(answer.status, 200);
    assert.equal(answer.body, 'hello from local');
  });

  test('a sprite on another peer answers through that peer\'s proxy, with a signed hop', async () => {
    const answer = await request(edgePort, 'app.sprites.localhost:8000', '/headers', { headers: AUTH });
    assert.equal(answer.status, 200, answer.body);
    const seen = JSON.parse(answer.body) as Record<string, string>;
    assert.equal(seen.host, 'app.sprites.localhost:8000');
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], 'app.sprites.localhost:8000');
    assert.equal(seen['x-sprite-hop'], undefined, 'the hop header stops at the owner');
    assert.equal(seen.authorization, undefined, 'the sprite never sees an API token');
    assert.equal(owner.activity('app')?.webSockets, 0);
    assert.ok(edge.activity('app')!.lastActive > 0 && owner.activity('app')!.lastActive > 0, 'both peers mark the sprite active');
  });

  test('the Host header is matched without port and case, and must be one label under the domain', async () => {
    assert.equal((await request(edgePort, 'LOCAL.Sprites.LocalHost.:443', '/', { headers: AUTH })).body, 'hello from local');
    for (const host of ['a.b.sprites.localhost', '127.0.0.1:80', 'sprites.localhost', '-x.sprites.localhost', 'local.sprites.localhost:port', 'local.example.com']) {
      const answer = await request(edgePort, host, '/', { headers: AUTH });
      assert.equal(answer.status, 400, host);
      assert.equal(answer.headers['x-sprite-error'], 'ERR_PROXY_BAD_HOST', host);
    }
  });

  test('hop-by-hop and forged forwarding headers do not reach the sprite; the proxy\'s own cookie neither', async () => {
    const answer = await request(edgePort, 'pub.sprites.localhost', '/headers', {
      headers: {
        connection: 'x-private, keep-alive', 'x-private': 'secret', 'proxy-authorization': 'Basic eDp5', te: 'trailers',
        'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.example', forwarded: 'for=6.6.6.6', cookie: 'a=1; __sprite_auth=abc; b=2', 'x-app-header': 'kept',
      },
    });
    const seen = JSON.parse(answer.body) as Record<string, string>;
    for (const name of ['x-private', 'proxy-authorization', 'te', 'forwarded', 'x-sprite-hop']) assert.equal(seen[name], undefined, name);
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-host'], 'pub.sprites.localhost');
    assert.equal(seen.cookie, 'a=1; b=2');
    assert.equal(seen['x-app-header'], 'kept');
  });

  test('error pages carry a code and a reason, as JSON or HTML', async () => {
    // Without a credential an unknown name is answered like a private sprite (cookie.test.ts holds that).
    const missing = await request(edgePort, 'nope.sprites.localhost');
    assert.equal(missing.status, 401);
    assert.deepEqual(JSON.parse(missing.body).error, 'ERR_PROXY_UNAUTHORIZED');
    const html = await request(edgePort, 'nope.sprites.localhost', '/', { headers: { accept: 'text/html' } });
    assert.match(html.headers['content-type'] ?? '', /text\/html/);
    assert.match(html.body, /sprite nope does not exist, or needs an API token/);
    const unknownReserved = await request(edgePort, 'app.sprites.localhost', '/__sprite/nothing');
    assert.equal(unknownReserved.status, 404);
  });

  test('an owner that is down, unknown or refusing answers 503 with a reason', async () => {
    for (const [name, pattern] of [['ghost', /which is down/], ['lost', /proxy address is not known/], ['refused', /refused the connection/]] as const) {
      const answer = await request(edgePort, `${name}.sprites.localhost`, '/', { headers: AUTH });
      assert.equal(answer.status, 503, name);
      assert.equal(answer.headers['x-sprite-error'], 'ERR_PROXY_OWNER_DOWN');
      assert.ok(answer.headers['retry-after']);
      assert.match(JSON.parse(answer.body).message, pattern);
    }
  });

  test('a failed sprite, a sprite with nothing listening, a reset and a silent upstream get clear statuses', async () => {
    const failed = await request(edgePort, 'broken.sprites.localhost', '/', { headers: AUTH });
    assert.equal(failed.status, 503);
    assert.equal(failed.headers['x-sprite-error'], 'ERR_PROXY_SPRITE_FAILED');
    assert.match(failed.body, /sprite-init exited/);
    const nothing = await request(edgePort, 'nothing.sprites.localhost', '/', { headers: AUTH });
    assert.equal(nothing.status, 502);
    assert.equal(nothing.headers['x-sprite-error'], 'ERR_PROXY_UPSTREAM');
    const reset = await request(edgePort, 'app.sprites.localhost', '/reset', { headers: AUTH });
    assert.equal(reset.status, 502);
    assert.equal(reset.headers['x-sprite-error'], 'ERR_PROXY_UPSTREAM');
    const silent = await request(edgePort, 'app.sprites.localhost', '/hang', { headers: AUTH });
    assert.equal(silent.status, 504);
    assert.equal(silent.headers['x-sprite-error'], 'ERR_PROXY_UPSTREAM_TIMEOUT');
  });

  test('a GET that meets a pooled connection the sprite just closed is sent again; a POST is not', async () => {
    // Answers the first request of each connection with keep-alive, then drops the connection
    // when it is reused: the race between a server's idle close and a proxy's reuse.
    const dir = (await tempDir());
    const open = new Set<net.Socket>();
    const stale = net.createServer((socket) => {
      open.add(socket);
      let seen = 0;
      socket.on('data', (chunk: Buffer) => {
        const requests = chunk.toString().match(/^(GET|POST) /gm)?.length ?? 0;
        if (requests === 0) return;
        seen += requests;
        if (seen === 1) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nkeep-alive: timeout=60\r\n\r\nok');
        else socket.destroy();
      });
    });
    const path = `${dir.dir}/stale.sock`;
    await new Promise<void>((resolve) => stale.listen(path, resolve));
    edgeSprites.sockets.set('stale', path);
    putSprite(both, { name: 'stale', owner: 'peer-edge', url_auth: 'public' });
    try {
      const get = async (): Promise<number> => (await request(edgePort, 'stale.sprites.localhost')).status;
      assert.deepEqual([await get(), await get(), await get()], [200, 200, 200]);
      const post = await request(edgePort, 'stale.sprites.localhost', '/', { method: 'POST', body: 'x' });
      assert.equal(post.status, 502);
    } finally {
      // The proxy may still pool a connection to this server: close it from this side.
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => stale.close(resolve));
      await dir.remove();
    }
  });

  test('a forwarded request is never forwarded again, and a forged hop is refused', async () => {
    const edgeSigner = new HopSigner('test-secret', 'peer-edge');
    // The owner peer sees `local` on the edge peer: a hop for it means the peers disagree.
    const loop = await request(ownerPort, 'local.sprites.localhost', '/', { headers: { ...AUTH, 'x-sprite-hop': edgeSigner.header('local') } });
    assert.equal(loop.status, 508);
    assert.equal(loop.headers['x-sprite-error'], 'ERR_PROXY_LOOP');
    const forged = new HopSigner('wrong-secret', 'peer-edge');
    const bad = await request(ownerPort, 'app.sprites.localhost', '/', { headers: { ...AUTH, 'x-sprite-hop': forged.header('app') } });
    assert.equal(bad.status, 400);
    assert.equal(bad.headers['x-sprite-error'], 'ERR_PROXY_BAD_HOP');
  });

  test('URL auth: sprite mode wants a token (bearer or login cookie), public lets anyone in', async () => {
    const none = await request(edgePort, 'app.sprites.localhost');
    assert.equal(none.status, 401);
    assert.equal(none.headers['x-sprite-error'], 'ERR_PROXY_UNAUTHORIZED');
    assert.equal((await request(edgePort, 'app.sprites.localhost', '/', { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await request(edgePort, 'pub.sprites.localhost')).status, 200);
    const badLogin = await request(edgePort, 'app.sprites.localhost', '/__sprite/login?token=wrong');
    assert.equal(badLogin.status, 401);
    const login = await request(edgePort, 'app.sprites.localhost', `/__sprite/login?token=${TOKEN}&next=/headers`);
    assert.equal(login.status, 303);
    assert.equal(login.headers.location, '/headers');
    const cookie = login.headers['set-cookie']![0]!;
    assert.match(cookie, /^__sprite_auth=v1\.[^;]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+$/);
    assert.ok(!cookie.includes(TOKEN), 'the cookie holds a signed session, not the token');
    const withCookie = await request(edgePort, 'app.sprites.localhost', '/headers', { headers: { cookie: `theme=dark; ${cookie.split(';')[0]}` } });
    assert.equal(withCookie.status, 200);
    assert.equal(JSON.parse(withCookie.body).cookie, 'theme=dark');
    const offsite = await request(edgePort, 'app.sprites.localhost', `/__sprite/login?token=${TOKEN}&next=//evil.example/`);
    assert.equal(offsite.headers.location, '/');
    const logout = await request(edgePort, 'app.sprites.localhost', '/__sprite/logout');
    assert.match(logout.headers['set-cookie']![0]!, /Max-Age=0/);
  });

  test("URL auth: a token opens its own org's sprites only, and a revoked token stops at once despite the cache", async () => {
    const acmeToken = 'acme-token-0123456789';
    const hash = tokenHash(acmeToken);
    edgeMesh.write((tx) => tx.upsert(tokensTable, { hash, name: 'acme-dev', org: 'acme', created: new Date().toISOString() }));
    const acme = { authorization: `Bearer ${acmeToken}` };
    for (let i = 0; i < 2; i++) assert.equal((await request(edgePort, 'acme.sprites.localhost', '/', { headers: acme })).status, 200);
    const login = await request(edgePort, 'acme.sprites.localhost', `/__sprite/login?token=${acmeToken}`);
    const session = { cookie: login.headers['set-cookie']![0]!.split(';')[0]! };
    assert.equal((await request(edgePort, 'acme.sprites.localhost', '/', { headers: session })).status, 200);
    const other = await request(edgePort, 'local.sprites.localhost', '/', { headers: acme });
    assert.equal(other.status, 401);
    assert.equal(other.headers['x-sprite-error'], 'ERR_PROXY_UNAUTHORIZED');
    // The fixture's token is of org admin without the admin flag: refused; made an admin token: let in.
    assert.equal((await request(edgePort, 'acme.sprites.localhost', '/', { headers: AUTH })).status, 401);
    edgeMesh.write((tx) => tx.upsert(tokensTable, { hash: tokenHash(TOKEN), admin: true }));
    assert.equal((await request(edgePort, 'acme.sprites.localhost', '/', { headers: AUTH })).status, 200);
    edgeMesh.write((tx) => tx.upsert(tokensTable, { hash: tokenHash(TOKEN), admin: false }));
    // The cache held the token a moment ago; the revocation empties it, so no wait is needed.
    edgeMesh.write((tx) => tx.upsert(tokensTable, { hash, revoked: true }));
    assert.equal((await request(edgePort, 'acme.sprites.localhost', '/', { headers: acme })).status, 401);
    assert.equal((await request(edgePort, 'acme.sprites.localhost', '/', { headers: session })).status, 401);
  });

  test('a WebSocket echoes through two hops and keeps the sprite active while open', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${edgePort}/ws`, { headers: { host: 'app.sprites.localhost', ...AUTH } });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const replies: string[] = [];
    ws.on('message', (data) => replies.push(data.toString()));
    for (const text of ['one', 'two', 'three']) ws.send(text);
    await eventually(() => replies.length === 3, 5000, 'three echoes');
    assert.deepEqual(replies, ['one', 'two', 'three']);
    assert.equal(edge.activity('app')?.webSockets, 1);
    assert.equal(owner.activity('app')?.webSockets, 1);
    ws.close();
    await eventually(() => edge.activity('app')?.webSockets === 0 && owner.activity('app')?.webSockets === 0, 5000, 'WebSocket counts to drop');
  });

  test('a WebSocket whose upstream resets after the upgrade is closed, with no HTTP answer inside the stream', async () => {
    // A stand-in owner peer that accepts the upgrade, then resets the connection on the first frame.
    const rude = net.createServer((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: x\r\n\r\n');
        socket.once('data', () => socket.resetAndDestroy());
      });
    });
    await new Promise<void>((resolve) => rude.listen(0, '127.0.0.1', resolve));
    putPeer(both, 'peer-rude', `http://127.0.0.1:${(rude.address() as net.AddressInfo).port}`);
    putSprite(both, { name: 'rude', owner: 'peer-rude', url_auth: 'public' });
    try {
      const client = net.connect(edgePort, '127.0.0.1');
      let received = '';
      client.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
      client.write('GET / HTTP/1.1\r\nhost: rude.sprites.localhost\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-key: a2V5a2V5a2V5a2V5a2V5aw==\r\nsec-websocket-version: 13\r\n\r\n');
      await eventually(() => received.startsWith('HTTP/1.1 101'), 5000, 'the upgrade');
      const closed = new Promise((resolve) => client.once('close', resolve));
      client.write(Buffer.from([0x81, 0x80, 1, 2, 3, 4]));
      await closed;
      assert.equal(received.split('HTTP/1.1').length, 2, `only the 101 answer was written: ${JSON.stringify(received)}`);
      await eventually(() => edge.activity('rude')?.webSockets === 0, 5000, 'the WebSocket count to drop');
    } finally {
      await new Promise((resolve) => rude.close(resolve));
    }
  });

  test('a WebSocket to a sprite that needs auth is refused with a plain HTTP answer', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${edgePort}/ws`, { headers: { host: 'app.sprites.localhost' } });
    const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    assert.equal(status, 401);
  });

  test('Server-Sent Events stream through two hops as they are sent', async () => {
    const http = await import('node:http');
    const chunks: string[] = [];
    const type = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: edgePort, path: '/sse', headers: { host: 'app.sprites.localhost', ...AUTH } }, (res) => {
        res.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
        res.on('end', () => resolve(res.headers['content-type'] ?? ''));
      }).on('error', reject);
    });
    assert.equal(type, 'text/event-stream');
    assert.equal(chunks.join(''), 'data: tick 0\n\ndata: tick 1\n\ndata: tick 2\n\n');
    assert.ok(chunks.length >= 2, 'events arrive one by one, not buffered to the end');
  });

  test('large uploads and downloads stream through two hops', async () => {
    const body = Buffer.alloc(5 * 1024 * 1024, 7);
    const upload = await request(edgePort, 'app.sprites.localhost', '/upload', { method: 'POST', headers: AUTH, body });
    assert.equal(upload.body, `got ${body.length} bytes`);
    const download = await request(edgePort, 'app.sprites.localhost', '/big', { headers: AUTH });
    assert.equal(download.body.length, 64 * 64 * 1024);
  });
});

describe('the rehome hook', () => {
  test('a sprite whose owner is down is re-homed once and routed again; a failed rehome is 503 with its reason', async () => {
    const { dir, remove } = await tempDir();
    const mesh = new FakeMesh('peer-one');
    const sprites = new FakeSprites();
    const app = await startApp(dir, 'moved');
    const calls: string[] = [];
    const proxy = testProxy(mesh, sprites, {
      rehome: async (name) => {
        calls.push(name);
        if (name !== 'moved') throw new Error(`no live peer has room for ${name}`);
        // What failover does: the record moves to a live peer (here, this one) and the sprite runs there.
        sprites.sockets.set(name, app.socketPath);
        putSprite([mesh], { name, owner: 'peer-one', url_auth: 'public' });
      },
    });
    try {
      const port = portOf((await proxy.start()).http);
      putPeer([mesh], 'peer-gone', 'http://127.0.0.1:1');
      putSprite([mesh], { name: 'moved', owner: 'peer-gone', url_auth: 'public' });
      putSprite([mesh], { name: 'stuck', owner: 'peer-gone', url_auth: 'public' });
      mesh.setState('peer-gone', 'down');
      const answers = await Promise.all([1, 2].map(() => request(port, 'moved.sprites.localhost')));
      assert.deepEqual(answers.map((a) => a.body), ['hello from moved', 'hello from moved']);
      assert.deepEqual(calls, ['moved'], 'one shared call');
      const stuck = await request(port, 'stuck.sprites.localhost');
      assert.equal(stuck.status, 503);
      assert.equal(stuck.headers['x-sprite-error'], 'ERR_PROXY_OWNER_DOWN');
      assert.match(stuck.body, /no live peer has room for stuck/);
    } finally {
      await proxy.stop();
      await app.close();
      await remove();
    }
  });
});
