// A revoked token closes what it opened through the proxy, on each peer the revocation reaches:
// WebSockets (bearer and login cookie), HTTP/1.1 keep-alive connections, HTTP/2 sessions and
// their streams. What another token opened stays open.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { revokeToken, tokenHash } from '../../node/records/index.ts';
import { tokensTable } from '../../node/records/tables.ts';
import { eventually } from '../helpers/peer.ts';
import { portOf, putSprite, request, startTwoProxies, type TwoProxies } from './helpers.ts';

const HTTPS = { host: '127.0.0.1', port: 0 };
// Long keep-alive and idle limits: a connection that closes must have been closed by the revocation.
const LIMITS = { https: HTTPS, keepAliveTimeoutMs: 600_000, clientIdleMs: 600_000 };
const REVOKED = 'acme-dev-token-0123456789';
const KEPT = 'acme-ci-token-0123456789';
const bearer = (token: string): { authorization: string } => ({ authorization: `Bearer ${token}` });

/** A WebSocket that has opened, and whether it has closed since. */
interface OpenSocket {
  ws: WebSocket;
  closed: () => boolean;
  /** Resolves with the echo of `text`: the socket still carries data both ways. */
  echo(text: string): Promise<string>;
}

async function openWebSocket(url: string, options: WebSocket.ClientOptions): Promise<OpenSocket> {
  const ws = new WebSocket(url, options);
  let closed = false;
  ws.on('close', () => (closed = true));
  ws.on('error', () => undefined);
  await once(ws, 'open');
  return {
    ws,
    closed: () => closed,
    echo: async (text) => {
      const answer = once(ws, 'message');
      ws.send(text);
      return String((await answer)[0]);
    },
  };
}

/** A raw HTTP/1.1 keep-alive connection: requests one after another on one socket. */
async function keepAlive(port: number, host: string, token: string): Promise<{ socket: net.Socket; closed: () => boolean; get(): Promise<string> }> {
  const socket = net.connect(port, '127.0.0.1');
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  const get = async (): Promise<string> => {
    socket.write(`GET / HTTP/1.1\r\nhost: ${host}\r\nauthorization: Bearer ${token}\r\n\r\n`);
    let text = '';
    // The app's answer is small and has a Content-Length: read until the body is in.
    while (!/\r\n\r\n[\s\S]*hello from/.test(text)) text += String((await once(socket, 'data'))[0]);
    return text.split('\r\n')[0]!;
  };
  return { socket, closed: () => closed, get };
}

describe('a revoked token closes what it opened through the proxy', () => {
  let fixture: TwoProxies;
  let ca = '';
  let edgeTls = 0;

  before(async () => {
    fixture = await startTwoProxies({ edge: LIMITS, owner: LIMITS });
    ca = fixture.edge.ca()!;
    edgeTls = portOf(fixture.edgeAddress.https);
    const created = new Date().toISOString();
    for (const mesh of fixture.both) {
      mesh.write((tx) => tx.upsert(tokensTable, { hash: tokenHash(REVOKED), name: 'acme-dev', org: 'acme', created }));
      mesh.write((tx) => tx.upsert(tokensTable, { hash: tokenHash(KEPT), name: 'acme-ci', org: 'acme', created }));
    }
    // `far` runs on the owner (two hops from the edge), `near` on the edge itself.
    fixture.ownerSprites.sockets.set('far', (await fixture.app('far')).socketPath);
    fixture.edgeSprites.sockets.set('near', (await fixture.app('near')).socketPath);
    putSprite(fixture.both, { name: 'far', owner: 'peer-owner', org: 'acme' });
    putSprite(fixture.both, { name: 'near', owner: 'peer-edge', org: 'acme' });
  });
  after(() => fixture?.stop());

  test('WebSockets, keep-alive connections and HTTP/2 streams close on each peer the revocation reaches; another token\'s stay open', async () => {
    const { edgePort } = fixture;
    const host = (name: string): string => `${name}.sprites.localhost`;
    const tlsHost = (name: string): string => `${host(name)}:${edgeTls}`;
    // A login session for `far` over HTTPS (the __Host- cookie), made with the token to revoke.
    const login = await request(edgeTls, tlsHost('far'), `/__sprite/login?token=${REVOKED}`, { tls: { ca } });
    assert.equal(login.status, 303);
    const cookie = login.headers['set-cookie']![0]!.split(';')[0]!;

    const wsBearer = await openWebSocket(`ws://127.0.0.1:${edgePort}/ws`, { headers: { host: host('far'), ...bearer(REVOKED) } });
    const wsCookie = await openWebSocket(`wss://127.0.0.1:${edgeTls}/ws`, {
      headers: { host: tlsHost('far'), cookie, 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'websocket', origin: `https://${tlsHost('far')}` }, ca, servername: host('far'),
    } as WebSocket.ClientOptions);
    const wsNear = await openWebSocket(`ws://127.0.0.1:${edgePort}/ws`, { headers: { host: host('near'), ...bearer(REVOKED) } });
    const wsKept = await openWebSocket(`ws://127.0.0.1:${edgePort}/ws`, { headers: { host: host('far'), ...bearer(KEPT) } });
    for (const ws of [wsBearer, wsCookie, wsNear, wsKept]) assert.equal(await ws.echo('ping'), 'ping');

    const h1 = await keepAlive(edgePort, host('far'), REVOKED);
    const h1Kept = await keepAlive(edgePort, host('far'), KEPT);
    assert.equal(await h1.get(), 'HTTP/1.1 200 OK');
    assert.equal(await h1.get(), 'HTTP/1.1 200 OK', 'a second request on the same connection');
    assert.equal(await h1Kept.get(), 'HTTP/1.1 200 OK');

    // HTTP/2: a finished request (the session stays open), and one in flight to each sprite on the
    // same session (the apps never answer /hang).
    const session = http2.connect(`https://127.0.0.1:${edgeTls}`, { ca, servername: host('far') });
    let sessionClosed = false;
    session.on('close', () => (sessionClosed = true));
    session.on('error', () => undefined);
    await once(session, 'connect');
    const done = session.request({ ':path': '/', ':authority': tlsHost('far'), ...bearer(REVOKED) });
    done.resume();
    assert.equal(Number((await once(done, 'response'))[0][':status']), 200);
    await once(done, 'end');
    const hang = (name: string): { stream: http2.ClientHttp2Stream; closed: () => boolean } => {
      const stream = session.request({ ':path': '/hang', ':authority': tlsHost(name), ...bearer(REVOKED) });
      let closed = false;
      stream.on('close', () => (closed = true));
      stream.on('error', () => undefined);
      stream.resume();
      return { stream, closed: () => closed };
    };
    const hangFar = hang('far');
    const hangNear = hang('near');
    // A request is admitted (and held) before it reaches the app: wait until each is under way there.
    await eventually(() => (fixture.owner.activity('far')?.requests ?? 0) > 0 && (fixture.edge.activity('near')?.requests ?? 0) > 0, 20_000, 'the /hang requests');

    // Revoked on the owner first (as `DELETE /v1/tokens/acme-dev` on that peer writes it), not yet heard by the edge:
    // the owner re-checked the two-hop WebSockets and closes its side, which ends them at the client.
    revokeToken(fixture.ownerMesh, 'acme-dev');
    await eventually(() => wsBearer.closed() && wsCookie.closed() && hangFar.closed(), 20_000, 'the owner to close the two-hop WebSockets and request');
    assert.equal(await wsNear.echo('still'), 'still', 'the edge has not heard of the revocation yet');
    assert.equal(hangNear.closed(), false);

    // The revocation reaches the edge (replication): what the edge holds for the token closes too.
    revokeToken(fixture.edgeMesh, 'acme-dev');
    await eventually(() => wsNear.closed() && h1.closed() && hangNear.closed() && sessionClosed, 20_000, 'the edge to close the WebSocket, the keep-alive connection, the HTTP/2 stream and session');
    assert.equal(hangNear.stream.rstCode, http2.constants.NGHTTP2_CANCEL);

    // Another token's WebSocket and keep-alive connection carry on; the revoked token opens nothing new.
    assert.equal(wsKept.closed(), false);
    assert.equal(await wsKept.echo('pong'), 'pong');
    assert.equal(await h1Kept.get(), 'HTTP/1.1 200 OK');
    assert.equal((await request(edgePort, host('far'), '/', { headers: bearer(REVOKED) })).status, 401);
    assert.equal((await request(edgeTls, tlsHost('far'), '/', { headers: { cookie }, tls: { ca } })).status, 401);
    wsKept.ws.close();
    h1Kept.socket.destroy();
  });
});
