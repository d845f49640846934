import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { asPeer, testPair } from '../helpers/links.ts';
import { createOn, eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

/**
 * Issue 13, between peers, with two real peers: client-sent hop headers grant nothing, requests
 * for another peer's sprite go over the peer link to that peer and nowhere else, the link takes
 * members of the mesh only, and adopt is a call between peers. docs/security/links.md maps each
 * finding to its test here.
 */

/** Sends raw bytes to a port and resolves with everything that came back before the server closed or went quiet. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    const done = (): void => {
      socket.destroy();
      resolve(received);
    };
    socket.setTimeout(3000, done);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      // One whole answer with a body is enough.
      if (/\r\n\r\n[\s\S]*\}$/.test(received)) done();
    });
    socket.on('close', done);
    socket.on('error', done);
    socket.write(text);
  });
}

/** A GET over TLS with the given client credentials; resolves with the status or the connection error. */
function tlsGet(url: string, options: https.RequestOptions): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const req = https.request(url, { ...options, agent: false, checkServerIdentity: () => undefined }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode }));
    });
    req.once('error', (error) => resolve({ error: error.message }));
    req.end();
  });
}

describe('links between peers', () => {
  let a: PeerProcess;
  let b: PeerProcess;
  let aId = '';
  let bLink = '';
  /** A loopback listener standing for an attacker's host: counts every connection it gets. */
  let attacker: net.Server;
  let attackerPort = 0;
  let attackerHits = 0;

  before(async () => {
    attacker = net.createServer((socket) => {
      attackerHits += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
    attackerPort = (attacker.address() as net.AddressInfo).port;
    a = await startPeer({ poolDepth: 1 });
    b = await startPeer({ poolDepth: 0, join: a });
    aId = (await a.api('GET', '/v1/health')).body.peer;
    await eventually(async () => {
      const { body } = await b.api('GET', '/v1/peers');
      const peers = body.peers as { id: string; state: string; link: string | null; self: boolean }[];
      bLink = peers.find((p) => p.self)?.link ?? '';
      return peers.filter((p) => p.state === 'alive' && p.link).length === 2;
    }, 30_000, 'both peers alive with their links');
    await createOn(a, 'owned-a');
    await eventually(async () => (await b.api('GET', '/v1/sprites/owned-a')).status === 200, 15_000, 'the sprite seen on b');
  });
  after(async () => {
    for (const peer of [b, a]) {
      if (!peer) continue;
      await peer.stop();
      await removeDataDir(peer.dataDir);
    }
    await new Promise((resolve) => attacker?.close(resolve));
  });

  test('a client-sent `x-sprite-hop: owner` grants nothing: the request still goes to the owner', async () => {
    // Before: b served it as the owner and refused (ERR_SPRITE_ELSEWHERE), as only the owner writes the row.
    const res = await fetch(`${b.url}/v1/sprites/owned-a`, {
      method: 'PUT', headers: { authorization: `Bearer ${b.token}`, 'content-type': 'application/json', 'x-sprite-hop': 'owner' }, body: JSON.stringify({ labels: ['forged-hop'] }),
    });
    assert.equal(res.status, 200, await res.text());
    const record = (await a.api('GET', '/v1/sprites/owned-a')).body;
    assert.equal(record.owner, aId);
    assert.deepEqual(record.labels, ['forged-hop'], 'the owner wrote it');
  });

  test('a client-sent arbiter hop with a passed deadline is ignored, not obeyed (the create is answered)', async () => {
    // Before: the peer took it for an arbiter's hop and dropped the connection unanswered.
    const res = await fetch(`${b.url}/v1/sprites`, {
      method: 'POST', headers: { authorization: `Bearer ${b.token}`, 'content-type': 'application/json', 'x-sprite-hop': 'arbiter', 'x-sprite-deadline': '1', 'x-sprite-origin': 'x;warm' },
      body: JSON.stringify({ name: 'owned-a' }),
    });
    assert.equal(res.status, 409);
    assert.equal((await res.json()).error, 'ERR_NAME_TAKEN');
  });

  test('a client-sent `place` hop does not skip arbitration: a taken name is refused', async () => {
    const res = await fetch(`${b.url}/v1/sprites`, {
      method: 'POST', headers: { authorization: `Bearer ${b.token}`, 'content-type': 'application/json', 'x-sprite-hop': 'place' }, body: JSON.stringify({ name: 'owned-a' }),
    });
    assert.equal(res.status, 409);
    assert.equal((await res.json()).error, 'ERR_NAME_TAKEN');
  });

  test('an absolute-form request line or a `//host` path is refused with 400 and reaches no other host', async () => {
    const port = Number(new URL(b.url).port);
    for (const target of [`http://127.0.0.1:${attackerPort}/v1/sprites/owned-a/exec?cmd=true`, `//127.0.0.1:${attackerPort}/v1/sprites/owned-a/exec?cmd=true`, `http://127.0.0.1:${attackerPort}/v1/sprites/owned-a`]) {
      const answer = await raw(port, `GET ${target} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${b.token}\r\nconnection: close\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 400 /, `${target}: ${answer.slice(0, 200)}`);
      assert.match(answer, /ERR_BAD_REQUEST/);
    }
    // A WebSocket upgrade with an absolute target: refused too.
    const upgrade = await raw(port, `GET http://127.0.0.1:${attackerPort}/v1/sprites/owned-a/exec?cmd=true HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${b.token}\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-key: a2V5a2V5a2V5a2V5a2V5aw==\r\nsec-websocket-version: 13\r\n\r\n`);
    assert.match(upgrade, /^HTTP\/1\.1 400 /);
    assert.equal(attackerHits, 0, 'the attacker\'s host got no connection');
  });

  test('the API link refuses plain HTTP, certificates of another CA, and requests without a valid hop', async () => {
    const linkPort = Number(new URL(bLink).port);
    // Plain HTTP on the TLS port: no HTTP answer at all.
    const plain = await raw(linkPort, `GET /v1/sprites HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${b.token}\r\n\r\n`);
    assert.doesNotMatch(plain, /^HTTP\/1\.1 200/);
    // A certificate naming a. but from another CA (one that is not the mesh's): the handshake fails.
    const stranger = await testPair(aId);
    const foreign = await tlsGet(`${bLink}/v1/sprites`, { cert: stranger.cert, key: stranger.key, ca: stranger.ca, rejectUnauthorized: false, headers: { authorization: `Bearer ${b.token}` } });
    assert.equal(foreign.status, undefined, 'no answer over a foreign certificate');
    // No client certificate: the handshake fails.
    const anonymous = await tlsGet(`${bLink}/v1/sprites`, { rejectUnauthorized: false, headers: { authorization: `Bearer ${b.token}` } });
    assert.equal(anonymous.status, undefined);
    // The peer's own credentials, but a hop signed for another path: 403.
    const moved = await asPeer(b, 'owner', 'GET', '/v1/sprites/owned-a', undefined, { signedPath: '/v1/sprites/other' });
    assert.equal(moved.status, 403, moved.body);
    const served = await asPeer(b, 'owner', 'GET', '/v1/sprites/owned-a', undefined);
    assert.equal(served.status, 200, `a hop signed for its path is served (positive control): ${served.body}`);
  });

  test('adopt is refused to every client token, admin included, and changes nothing', async () => {
    const before = (await a.api('GET', '/v1/sprites/owned-a')).body;
    for (const peer of [a, b]) {
      const res = await fetch(`${peer.url}/v1/sprites/owned-a/adopt`, {
        method: 'POST', headers: { authorization: `Bearer ${peer.token}`, 'content-type': 'application/json', 'x-sprite-hop': 'adopt' }, body: JSON.stringify({ start: false }),
      });
      assert.equal(res.status, 403, await res.text());
    }
    // Over the link, signed by a peer that is not the sprite's owner (b asking b): refused as well.
    const notOwner = await asPeer(b, 'adopt', 'POST', '/v1/sprites/owned-a/adopt', JSON.stringify({ start: false }), { token: null });
    assert.equal(notOwner.status, 403, notOwner.body);
    const after = (await a.api('GET', '/v1/sprites/owned-a')).body;
    assert.deepEqual({ ...after, updated_at: before.updated_at }, before);
  });

  test('a peer\'s own admin token rotates (through another peer) and can be revoked; links need no token', async () => {
    const old = a.token;
    const rotated = await fetch(`${b.url}/v1/peers/${aId}/token`, { method: 'POST', headers: { authorization: `Bearer ${b.token}` } });
    assert.equal(rotated.status, 200);
    const { peer, token } = await rotated.json() as { peer: string; token: string };
    assert.equal(peer, aId);
    assert.notEqual(token, old);
    await eventually(async () => (await fetch(`${b.url}/v1/sprites`, { headers: { authorization: `Bearer ${old}` } })).status === 401, 10_000, 'the old token refused on b');
    assert.equal((await fetch(`${a.url}/v1/sprites`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    a.token = token;
    // Revoking a peer's token outright (its own operator then rotates with another admin token).
    const revoked = await fetch(`${a.url}/v1/tokens/peer-${aId}`, { method: 'DELETE', headers: { authorization: `Bearer ${b.token}` } });
    assert.equal(revoked.status, 204);
    await eventually(async () => (await fetch(`${b.url}/v1/sprites`, { headers: { authorization: `Bearer ${token}` } })).status === 401, 10_000, 'the revoked token refused on b');
    // Forwarding between the peers still works: it never needed a's token.
    const forwarded = await fetch(`${b.url}/v1/sprites/owned-a/exec?cmd=true`, { method: 'POST', headers: { authorization: `Bearer ${b.token}` } });
    assert.ok(forwarded.status < 500, `forwarded: ${forwarded.status}`);
  });
});
