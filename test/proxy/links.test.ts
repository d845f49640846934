import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { generateLinkCa, issuePeerCert } from '../../node/links/index.ts';
import { HOP_TTL_MS, HopSigner } from '../../proxy/index.ts';
import { testLink } from '../helpers/links.ts';
import { putSprite, request, startTwoProxies, TOKEN, type Answer, type SpriteApp, type TwoProxies } from './helpers.ts';

/**
 * Proxy hops between peers (issue 13): they travel over the peer link only (mutual TLS with the
 * peer-link CA), and a hop header binds the sending peer, the sprite and a short expiry. The
 * two-hop path itself is covered by routing.test.ts.
 */

const AUTH = { authorization: `Bearer ${TOKEN}` };

describe('proxy hops over the peer link', () => {
  let fixture: TwoProxies;
  let linkPort = 0;
  const apps: SpriteApp[] = [];
  const edgeSigner = new HopSigner('test-secret', 'peer-edge');

  /** A request to the owner's link listener as the edge peer (its certificate), with `hop` as the hop header. */
  const overLink = async (hop: string | undefined, host = 'app.sprites.localhost', as = 'peer-edge'): Promise<Answer> => {
    const credentials = await testLink(as);
    return request(linkPort, host, '/', { headers: { ...AUTH, ...(hop === undefined ? {} : { 'x-sprite-hop': hop }) }, tls: credentials.client('peer-owner') });
  };

  before(async () => {
    fixture = await startTwoProxies();
    linkPort = Number(new URL(fixture.ownerAddress.link!).port);
    apps.push(await fixture.app('app'), await fixture.app('other'));
    fixture.ownerSprites.sockets.set('app', apps[0]!.socketPath);
    fixture.ownerSprites.sockets.set('other', apps[1]!.socketPath);
    putSprite(fixture.both, { name: 'app', owner: 'peer-owner' });
    putSprite(fixture.both, { name: 'other', owner: 'peer-owner', url_auth: 'public' });
  });
  after(async () => {
    await fixture?.stop();
  });

  test('a hop signed by the peer its certificate names, for this sprite, unexpired, is served (and two hops work)', async () => {
    const answer = await overLink(edgeSigner.header('app'));
    assert.equal(answer.status, 200);
    assert.equal(answer.body, 'hello from app');
    const twoHops = await request(fixture.edgePort, 'app.sprites.localhost', '/', { headers: AUTH });
    assert.equal(twoHops.status, 200);
  });

  test('on the link: no hop, a forged, expired, far-future, other-sprite or other-peer hop is refused', async () => {
    const now = Date.now();
    // A header captured earlier (a fresh signer: the fixture's caches its current one).
    const captured = new HopSigner('test-secret', 'peer-edge').header('app', now - HOP_TTL_MS - 1000);
    const [peer, , expiry, mac] = captured.split(' ');
    const cases: Record<string, string | undefined> = {
      missing: undefined,
      forged: new HopSigner('wrong-secret', 'peer-edge').header('app'),
      'replayed after expiry': captured,
      'far future': new HopSigner('test-secret', 'peer-edge').header('app', now + 3_600_000),
      'moved to another sprite': `${peer} other ${expiry} ${mac}`,
      // Signed by another member (with the mesh's secret) but sent over peer-edge's link.
      'another peer\'s': new HopSigner('test-secret', 'peer-owner').header('app'),
    };
    for (const [what, hop] of Object.entries(cases)) {
      const answer = await overLink(hop, what === 'moved to another sprite' ? 'other.sprites.localhost' : 'app.sprites.localhost');
      assert.equal(answer.status, 400, `${what}: ${answer.status} ${answer.body}`);
      assert.equal(answer.headers['x-sprite-error'], 'ERR_PROXY_BAD_HOP', what);
    }
  });

  test('a certificate of a peer that is not a member is refused, though the CA signed it', async () => {
    const answer = await overLink(new HopSigner('test-secret', 'peer-stranger').header('app'), 'app.sprites.localhost', 'peer-stranger');
    assert.equal(answer.status, 400);
    assert.equal(answer.headers['x-sprite-error'], 'ERR_PROXY_BAD_HOP');
  });

  test('plain HTTP, no client certificate, or one from another CA get no HTTP answer from the link', async () => {
    const plain = await new Promise<string>((resolve) => {
      const socket = net.connect(linkPort, '127.0.0.1');
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
      socket.on('close', () => resolve(received));
      socket.on('error', () => resolve(received));
      socket.setTimeout(3000, () => socket.destroy());
      socket.write(`GET / HTTP/1.1\r\nhost: app.sprites.localhost\r\nx-sprite-hop: ${edgeSigner.header('app')}\r\n\r\n`);
    });
    assert.doesNotMatch(plain, /^HTTP\/1\.1 200/);
    const credentials = await testLink('peer-edge');
    const noCert = await request(linkPort, 'app.sprites.localhost', '/', { headers: { ...AUTH, 'x-sprite-hop': edgeSigner.header('app') }, tls: { ...credentials.client('peer-owner'), cert: undefined, key: undefined } }).catch((error: Error) => error);
    assert.ok(noCert instanceof Error, 'no answer without a client certificate');
    const otherCa = await generateLinkCa();
    const stranger = await issuePeerCert(otherCa, 'peer-edge');
    const foreign = await request(linkPort, 'app.sprites.localhost', '/', { headers: { ...AUTH, 'x-sprite-hop': edgeSigner.header('app') }, tls: { ...credentials.client('peer-owner'), cert: stranger.cert, key: stranger.key } }).catch((error: Error) => error);
    assert.ok(foreign instanceof Error, 'no answer over a certificate of another CA');
  });

  test('the edge refuses to forward to a link whose certificate names another peer', async () => {
    // peer-edge's row claims the owner's link: a request routed to "peer-edge" there must not be sent.
    const { both } = fixture;
    const { putPeer } = await import('./helpers.ts');
    putPeer(both, 'peer-impostor', 'http://127.0.0.1:1', fixture.ownerAddress.link);
    putSprite(both, { name: 'fake', owner: 'peer-impostor', url_auth: 'public' });
    const answer = await request(fixture.edgePort, 'fake.sprites.localhost', '/');
    assert.equal(answer.status, 502, answer.body);
    assert.notEqual(answer.body, 'hello from app');
  });
});
