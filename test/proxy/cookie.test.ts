// The proxy's client-facing auth as an attacker meets it: credentials that must not reach sprites,
// the login session (not derivable from mesh.db, bound, prefixed, unshadowable), requests from a
// sibling sprite's page, open redirects, and what an unauthenticated caller can learn or trigger.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { tokenHash } from '../../node/records/index.ts';
import { tokensTable } from '../../node/records/tables.ts';
import { safeNext } from '../../proxy/browser.ts';
import { SessionSigner } from '../../proxy/session.ts';
import { FakeMesh, FakeSprites, portOf, putPeer, putSprite, request, startApp, startTwoProxies, tempDir, testProxy, TOKEN, type Answer, type TwoProxies } from './helpers.ts';

const HTTPS = { host: '127.0.0.1', port: 0 };
const ADMIN = 'admin-token-0123456789';
const ACME = 'acme-token-0123456789';
const bearer = (token: string): { authorization: string } => ({ authorization: `Bearer ${token}` });

describe('the proxy\'s client-facing auth', () => {
  let fixture: TwoProxies;
  let ca = '';
  let edgeTls = 0;
  let ownerTls = 0;
  let edgePort = 0;
  /** `Host` of sprite `name` on the edge's HTTPS listener (the origin a browser would use). */
  const tlsHost = (name: string): string => `${name}.sprites.localhost:${edgeTls}`;
  const getTls = (name: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> =>
    request(edgeTls, tlsHost(name), path, { headers, method, tls: { ca } });
  /** Signs in at sprite `name` over HTTPS (or plain HTTP) and returns the cookie's `name=value`. */
  const login = async (name: string, token: string, scheme: 'https' | 'http' = 'https'): Promise<{ pair: string; header: string }> => {
    const path = `/__sprite/login?token=${token}`;
    const answer = scheme === 'https' ? await getTls(name, path) : await request(edgePort, `${name}.sprites.localhost`, path);
    assert.equal(answer.status, 303, answer.body);
    const header = answer.headers['set-cookie']![0]!;
    return { pair: header.split(';')[0]!, header };
  };

  before(async () => {
    fixture = await startTwoProxies({ edge: { https: HTTPS }, owner: { https: HTTPS } });
    ca = fixture.edge.ca()!;
    edgeTls = portOf(fixture.edgeAddress.https);
    ownerTls = portOf(fixture.ownerAddress.https);
    edgePort = fixture.edgePort;
    const created = new Date().toISOString();
    for (const mesh of fixture.both) {
      mesh.write((tx) => tx.upsert(tokensTable, { hash: tokenHash(ADMIN), name: 'root', admin: true, created }));
      mesh.write((tx) => tx.upsert(tokensTable, { hash: tokenHash(ACME), name: 'acme-dev', org: 'acme', created }));
    }
    for (const name of ['app', 'sib', 'pub']) {
      fixture.ownerSprites.sockets.set(name, (await fixture.app(name)).socketPath);
      putSprite(fixture.both, { name, owner: 'peer-owner', url_auth: name === 'pub' ? 'public' : 'sprite' });
    }
  });
  after(() => fixture?.stop());

  test('a public sprite never receives the mesh\'s credentials: API tokens in any Authorization form, login cookies', async () => {
    const session = await login('pub', TOKEN);
    const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    for (const authorization of [`Bearer ${TOKEN}`, `Bearer ${ADMIN}`, `bearer   ${ADMIN}`, ADMIN, basic('x', ADMIN), basic(ADMIN, ''), `Token ${ACME}`, `Bearer ${TOKEN} trailing`, `Custom a=1, key=${ADMIN}`]) {
      for (const get of [(h: Record<string, string>) => getTls('pub', '/headers', h), (h: Record<string, string>) => request(edgePort, 'pub.sprites.localhost', '/headers', { headers: h })]) {
        const answer = await get({ authorization, cookie: `theme=dark; ${session.pair}; __sprite_auth=x; __SPRITE_AUTH=y` });
        assert.equal(answer.status, 200);
        const seen = JSON.parse(answer.body) as Record<string, string>;
        assert.equal(seen.authorization, undefined, authorization);
        assert.equal(seen.cookie, 'theme=dark', 'only the app\'s own cookies');
      }
    }
    // An app's own scheme passes: only a value that is a mesh token is taken out.
    for (const authorization of ['Bearer app-session-42', basic('alice', 'hunter2')]) {
      const seen = JSON.parse((await getTls('pub', '/headers', { authorization })).body) as Record<string, string>;
      assert.equal(seen.authorization, authorization);
    }
  });

  test('on a sprite-auth URL the bearer is consumed; an app\'s own Authorization next to a session cookie passes', async () => {
    const seen = JSON.parse((await getTls('app', '/headers', bearer(TOKEN))).body) as Record<string, string>;
    assert.equal(seen.authorization, undefined);
    const session = await login('app', TOKEN);
    const own = await getTls('app', '/headers', { cookie: session.pair, authorization: 'Bearer app-session-42' });
    assert.equal(own.status, 200);
    const mine = JSON.parse(own.body) as Record<string, string>;
    assert.equal(mine.authorization, 'Bearer app-session-42');
    assert.equal(mine.cookie, undefined);
  });

  test('the login cookie is a signed session, not the stored hash: __Host- on HTTPS, bound to sprite and scheme, expiring, revocable', async () => {
    const { pair, header } = await login('app', TOKEN);
    assert.match(header, /^__Host-sprite_auth=v1\.[0-9a-f]{64}\.[0-9a-z]+\.[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Secure; Max-Age=\d+$/);
    assert.ok(!/domain=/i.test(header), '__Host- cookies carry no Domain');
    const value = pair.slice(pair.indexOf('=') + 1);
    assert.notEqual(value, tokenHash(TOKEN));
    assert.ok(!header.includes(TOKEN));
    // Opens the sprite through the edge (one hop) and on the owner directly.
    assert.equal((await getTls('app', '/', { cookie: pair })).status, 200);
    assert.equal((await request(ownerTls, `app.sprites.localhost:${ownerTls}`, '/', { headers: { cookie: pair }, tls: { ca } })).status, 200);
    // What mesh.db holds (the token's hash) opens nothing, under either cookie name.
    const hash = tokenHash(TOKEN);
    assert.equal((await getTls('app', '/', { cookie: `__Host-sprite_auth=${hash}` })).status, 401);
    assert.equal((await request(edgePort, 'app.sprites.localhost', '/', { headers: { cookie: `__sprite_auth=${hash}` } })).status, 401);
    // Nor a session made with another key (someone with mesh.db but not the swarm key).
    const forged = new SessionSigner('not-the-mesh-secret').issue(hash, 'app', 'https');
    assert.equal((await getTls('app', '/', { cookie: `__Host-sprite_auth=${forged}` })).status, 401);
    // Bound to the sprite: a session of the sibling does not open app.
    const sibling = await login('sib', TOKEN);
    assert.equal((await getTls('sib', '/', { cookie: sibling.pair })).status, 200);
    assert.equal((await getTls('app', '/', { cookie: sibling.pair })).status, 401);
    // Bound to the scheme: the plain-HTTP session (no prefix, no Secure) does not open the HTTPS URL.
    const plain = await login('app', TOKEN, 'http');
    assert.match(plain.header, /^__sprite_auth=v1\.[^;]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+$/);
    assert.equal((await request(edgePort, 'app.sprites.localhost', '/', { headers: { cookie: plain.pair } })).status, 200);
    assert.equal((await getTls('app', '/', { cookie: `__Host-sprite_auth=${plain.pair.split('=')[1]}` })).status, 401);
    // Expiring: a session whose time is up (signed with the fixture's key) is refused.
    const old = new SessionSigner('test-session-secret').issue(hash, 'app', 'https', Date.now() - 8 * 24 * 3600_000);
    assert.equal((await getTls('app', '/', { cookie: `__Host-sprite_auth=${old}` })).status, 401);
    // A token that does not open the sprite cannot sign in there.
    assert.equal((await getTls('app', `/__sprite/login?token=${ACME}`)).status, 401);
  });

  test('a revoked token\'s session stops at once, on both peers', async () => {
    const temp = 'temp-token-0123456789';
    for (const mesh of fixture.both) mesh.write((tx) => tx.upsert(tokensTable, { hash: tokenHash(temp), name: 'temp', created: new Date().toISOString() }));
    const { pair } = await login('app', temp);
    assert.equal((await getTls('app', '/', { cookie: pair })).status, 200);
    for (const mesh of fixture.both) mesh.write((tx) => tx.upsert(tokensTable, { hash: tokenHash(temp), revoked: true }));
    assert.equal((await getTls('app', '/', { cookie: pair })).status, 401);
  });

  test('duplicate cookies of the session\'s name neither shadow a valid session nor pass for one', async () => {
    const { pair } = await login('app', TOKEN);
    const sibling = await login('sib', TOKEN);
    const siblingValue = sibling.pair.split('=')[1]!;
    // A shadow planted first (as a sibling's Domain cookie would sort) does not hide the valid one.
    assert.equal((await getTls('app', '/', { cookie: `__Host-sprite_auth=planted; ${pair}` })).status, 200);
    assert.equal((await getTls('app', '/', { cookie: `__Host-sprite_auth=${siblingValue}; ${pair}` })).status, 200);
    // Shadows alone open nothing.
    assert.equal((await getTls('app', '/', { cookie: `__Host-sprite_auth=planted; __Host-sprite_auth=${siblingValue}` })).status, 401);
    // On plain HTTP (no prefix possible) a sibling can plant __sprite_auth for the whole domain: still not valid here.
    const plainSibling = await login('sib', TOKEN, 'http');
    const plain = await login('app', TOKEN, 'http');
    assert.equal((await request(edgePort, 'app.sprites.localhost', '/', { headers: { cookie: plainSibling.pair } })).status, 401);
    assert.equal((await request(edgePort, 'app.sprites.localhost', '/', { headers: { cookie: `${plainSibling.pair}; ${plain.pair}` } })).status, 200);
  });

  test('a sibling sprite\'s page cannot use the session: only same-origin requests and top-level navigations', async () => {
    const { pair } = await login('app', TOKEN);
    const cookie = pair;
    const cases: { headers: Record<string, string>; method?: string; status: number; what: string }[] = [
      { headers: { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' }, status: 200, what: 'same-origin fetch' },
      { headers: { 'sec-fetch-site': 'none', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' }, status: 200, what: 'typed URL' },
      { headers: { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' }, status: 200, what: 'link from a sibling' },
      { headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' }, status: 200, what: 'link from elsewhere' },
      { headers: { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' }, status: 401, what: 'sibling fetch' },
      { headers: { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' }, status: 401, what: 'sibling <img>' },
      { headers: { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'iframe' }, status: 401, what: 'sibling frame' },
      { headers: { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' }, method: 'POST', status: 401, what: 'sibling form POST' },
      { headers: { origin: `https://${tlsHost('sib')}` }, method: 'POST', status: 401, what: 'sibling origin without fetch metadata' },
      { headers: { origin: 'null' }, method: 'POST', status: 401, what: 'opaque origin' },
      { headers: { origin: `https://${tlsHost('app')}` }, method: 'POST', status: 200, what: 'own origin without fetch metadata' },
      { headers: {}, status: 200, what: 'no browser metadata (curl)' },
    ];
    for (const c of cases) {
      const answer = await getTls('app', '/', { cookie, ...c.headers }, c.method);
      assert.equal(answer.status, c.status, c.what);
    }
    // A bearer token is no ambient credential: a sibling cannot make a browser send it, so it counts anywhere.
    assert.equal((await getTls('app', '/', { ...bearer(TOKEN), 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'cors' })).status, 200);
    // A WebSocket opened by a sibling's page is refused; one from the sprite's own page connects.
    const open = (headers: Record<string, string>): Promise<number> => new Promise((resolve) => {
      const ws = new WebSocket(`wss://127.0.0.1:${edgeTls}/ws`, { headers: { host: tlsHost('app'), cookie, ...headers }, ca, servername: 'app.sprites.localhost' } as WebSocket.ClientOptions);
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('error', () => resolve(0));
    });
    assert.equal(await open({ 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'websocket', origin: `https://${tlsHost('sib')}` }), 401);
    assert.equal(await open({ 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'websocket', origin: `https://${tlsHost('app')}` }), 101);
  });

  test('over HTTP/2 the same rules hold: cookie fields split by the client, :authority as the origin', async () => {
    const { pair } = await login('app', TOKEN);
    const session = http2.connect(`https://127.0.0.1:${edgeTls}`, { ca, servername: 'app.sprites.localhost' });
    try {
      await new Promise((resolve, reject) => session.once('connect', resolve).once('error', reject));
      const get = (headers: http2.OutgoingHttpHeaders): Promise<{ status: number; body: string }> => new Promise((resolve, reject) => {
        const stream = session.request({ ':path': '/headers', ':authority': tlsHost('app'), ...headers });
        let status = 0;
        let body = '';
        stream.on('response', (answer) => (status = Number(answer[':status'])));
        stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
        stream.on('end', () => resolve({ status, body }));
        stream.on('error', reject);
      });
      // HTTP/2 lets a client send each cookie in a field of its own (RFC 9113 8.2.3).
      const split = await get({ cookie: ['theme=dark', '__Host-sprite_auth=planted', pair], 'sec-fetch-site': 'same-origin' });
      assert.equal(split.status, 200);
      assert.equal((JSON.parse(split.body) as Record<string, string>).cookie, 'theme=dark');
      assert.equal((await get({ cookie: pair, 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'cors' })).status, 401);
      assert.equal((await get({ cookie: pair, origin: `https://${tlsHost('app')}` })).status, 200);
      assert.equal((await get({ cookie: pair, origin: `https://${tlsHost('sib')}` })).status, 401);
    } finally {
      session.close();
    }
  });

  test('login and logout redirect only to same-origin paths', async () => {
    const table: [string | null, string][] = [
      [null, '/'], ['', '/'], ['/a/b?c=d#e', '/a/b?c=d#e'], ['/headers', '/headers'],
      ['//evil.com', '/'], ['/\\evil.com', '/'], ['\\\\evil.com', '/'], ['/\t/evil.com', '/'], ['/\n/evil.com', '/'], ['/\r\n/evil.com', '/'],
      ['/ /evil.com', '/'], ['/\x00/evil.com', '/'], ['https://evil.com', '/'], ['http:evil.com', '/'], ['javascript:alert(1)', '/'],
      ['evil.com', '/'], ['/.//evil.com', '/'], ['/./\\evil.com', '/'], ['/..//evil.com', '/'], ['/%2F/evil.com', '/%2F/evil.com'], ['/a\\b', '/'],
      ['/\u3000/evil.com', '/%E3%80%80/evil.com'], ['/caf\u00e9', '/caf%C3%A9'],
    ];
    for (const [next, expected] of table) assert.equal(safeNext(next), expected, JSON.stringify(next));
    // Over the wire, with the query encodings a link would use (%09 is a tab, %5C a backslash, %2F a slash).
    for (const query of ['/%09/evil.com', '/%0a/evil.com', '/%5Cevil.com', '%2F%2Fevil.com', '/%2F%2Fevil.com', 'https:%2F%2Fevil.com', '/.%2F%2Fevil.com']) {
      for (const path of [`/__sprite/login?token=${TOKEN}&next=${query}`, `/__sprite/logout?next=${query}`]) {
        const answer = await getTls('app', path);
        assert.equal(answer.status, 303, path);
        const location = answer.headers.location!;
        assert.equal(new URL(location, `https://${tlsHost('app')}/`).host, tlsHost('app'), `${path} -> ${location}`);
        assert.ok(location.startsWith('/') && !location.startsWith('//') && !/[\\\s]/.test(location), `${path} -> ${location}`);
      }
    }
    const logout = await getTls('app', '/__sprite/logout');
    assert.equal(logout.headers['set-cookie']![0], '__Host-sprite_auth=; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=0');
  });
});

test('a verified session is remembered, but still expires and stays bound to its sprite and scheme', () => {
  const signer = new SessionSigner('k');
  const now = Date.now();
  const hash = tokenHash(TOKEN);
  const value = signer.issue(hash, 'app', 'https', now);
  assert.equal(signer.verify(value, 'app', 'https', now), hash);
  assert.equal(signer.verify(value, 'app', 'https', now + 1000), hash, 'from the cache');
  assert.equal(signer.verify(value, 'sib', 'https', now), undefined);
  assert.equal(signer.verify(value, 'app', 'http', now), undefined);
  assert.equal(signer.verify(`${value.slice(0, -1)}${value.endsWith('A') ? 'B' : 'A'}`, 'app', 'https', now), undefined);
  assert.equal(signer.verify(value, 'app', 'https', now + 8 * 24 * 3600_000), undefined, 'expired despite the cache');
  assert.equal(new SessionSigner('other').verify(value, 'app', 'https', now), undefined);
});

describe('auth comes before routing', () => {
  test('an unauthenticated caller gets one answer for unknown and private names, and triggers no take-over or wake', async () => {
    const { dir, remove } = await tempDir();
    const mesh = new FakeMesh('peer-one');
    const sprites = new FakeSprites();
    const rehomed: string[] = [];
    const apps = [await startApp(dir, 'orphan'), await startApp(dir, 'asleep'), await startApp(dir, 'open')];
    const proxy = testProxy(mesh, sprites, {
      rehome: async (name) => {
        rehomed.push(name);
        sprites.sockets.set(name, apps[name === 'orphan' ? 0 : 2]!.socketPath);
        putSprite([mesh], { name, owner: 'peer-one', url_auth: name === 'orphan' ? 'sprite' : 'public' });
      },
    });
    try {
      const port = portOf((await proxy.start()).http);
      const created = new Date().toISOString();
      mesh.write((tx) => tx.upsert(tokensTable, { hash: tokenHash(ADMIN), name: 'root', admin: true, created }));
      mesh.write((tx) => tx.upsert(tokensTable, { hash: tokenHash(ACME), name: 'acme-dev', org: 'acme', created }));
      putPeer([mesh], 'peer-gone', 'http://127.0.0.1:1');
      putSprite([mesh], { name: 'orphan', owner: 'peer-gone' });
      putSprite([mesh], { name: 'open', owner: 'peer-gone', url_auth: 'public' });
      putSprite([mesh], { name: 'asleep', owner: 'peer-one', state: 'stopped' });
      sprites.stopped.set('asleep', apps[1]!.socketPath);
      mesh.setState('peer-gone', 'down');
      const get = (name: string, headers: Record<string, string> = {}): Promise<Answer> => request(port, `${name}.sprites.localhost`, '/', { headers });
      const strip = (answer: Answer, name: string): unknown => [answer.status, answer.headers['x-sprite-error'], answer.body.replaceAll(name, 'NAME')];
      for (const headers of [{}, bearer('wrong'), bearer(ACME), { cookie: '__sprite_auth=v1.x' }] as Record<string, string>[]) {
        const unknown = await get('nobody', headers);
        assert.equal(unknown.status, 401);
        for (const name of ['orphan', 'asleep']) assert.deepEqual(strip(await get(name, headers), name), strip(unknown, 'nobody'), `${name} with ${JSON.stringify(headers)}`);
      }
      assert.deepEqual(rehomed, [], 'no take-over for a caller that may not open the sprite');
      assert.equal(sprites.starts, 0, 'no wake either');
      // An admin learns that a name is unknown; a caller who may open the sprite takes it over and wakes it.
      assert.equal((await get('nobody', bearer(ADMIN))).status, 404);
      assert.equal((await get('orphan', bearer(TOKEN))).body, 'hello from orphan');
      assert.equal((await get('asleep', bearer(TOKEN))).body, 'hello from asleep');
      assert.deepEqual(rehomed, ['orphan']);
      assert.equal(sprites.starts, 1);
      // A public sprite is public: anyone may take it over and open it.
      assert.equal((await get('open')).body, 'hello from open');
      assert.deepEqual(rehomed, ['orphan', 'open']);
    } finally {
      await proxy.stop();
      for (const app of apps) await app.close();
      await remove();
    }
  });
});
