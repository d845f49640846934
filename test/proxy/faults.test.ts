import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import type { EdgeProxy } from '../../proxy/index.ts';
import { eventually } from '../helpers/peer.ts';
import { openFds, putSprite, request, startTwoProxies, TOKEN, type TwoProxies } from './helpers.ts';

const AUTH = { authorization: `Bearer ${TOKEN}` };

/** Sends raw bytes and reads until the proxy closes the connection. */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    let got = '';
    socket.on('data', (chunk: Buffer) => (got += chunk.toString()));
    socket.on('close', () => resolve(got));
    socket.on('error', reject);
  });
}

describe('bad input and faults', () => {
  let fixture: TwoProxies;
  let edge: EdgeProxy;
  let owner: EdgeProxy;
  let edgePort = 0;

  before(async () => {
    fixture = await startTwoProxies({ edge: { headersTimeoutMs: 300, maxHeaderBytes: 4096 } });
    ({ edge, owner, edgePort } = fixture);
    fixture.ownerSprites.sockets.set('app', (await fixture.app('app')).socketPath);
    putSprite(fixture.both, { name: 'app', owner: 'peer-owner', url_auth: 'public' });
  });
  after(() => fixture?.stop());

  test('oversized headers get 431', async () => {
    const answer = await raw(edgePort, `GET / HTTP/1.1\r\nhost: app.sprites.localhost\r\nx-big: ${'a'.repeat(8000)}\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 431 /);
    assert.match(answer, /ERR_PROXY_HEADERS_TOO_LARGE/);
  });

  test('a client that sends its headers too slowly gets 408 and is disconnected', async () => {
    const answer = await raw(edgePort, 'GET / HTTP/1.1\r\nhost: app.sprites.localhost\r\n');
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /ERR_PROXY_REQUEST_TIMEOUT/);
  });

  test('a malformed request gets 400', async () => {
    const answer = await raw(edgePort, 'NOT HTTP AT ALL\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /ERR_PROXY_BAD_REQUEST/);
  });

  test('a short soak of early disconnects and WebSocket churn leaves no connections or descriptors behind', async () => {
    const settle = async (): Promise<void> => {
      // Client connections close; the edge's pooled keep-alive connections to the owner may stay.
      await eventually(() => edge.stats().connections === 0 && edge.stats().forwarder.activeSockets === 0 && owner.stats().forwarder.activeSockets === 0, 10_000, 'connections to close');
    };
    // Warm the pools once so the baseline includes their idle keep-alive sockets.
    await request(edgePort, 'app.sprites.localhost', '/', { headers: AUTH });
    await settle();
    const baseline = await openFds();
    for (let round = 0; round < 20; round++) {
      const work: Promise<unknown>[] = [];
      for (let i = 0; i < 5; i++) {
        // A client that leaves while the sprite streams a large answer.
        work.push(new Promise<void>((resolve) => {
          const req = http.get({ host: '127.0.0.1', port: edgePort, path: '/big', headers: { host: 'app.sprites.localhost' } }, (res) => {
            res.once('data', () => req.destroy());
          });
          req.on('close', () => resolve());
          req.on('error', () => undefined);
        }));
        // A client that leaves before any answer.
        work.push(new Promise<void>((resolve) => {
          const req = http.get({ host: '127.0.0.1', port: edgePort, path: '/hang', headers: { host: 'app.sprites.localhost' } });
          req.on('socket', (socket) => socket.once('connect', () => setImmediate(() => req.destroy())));
          req.on('close', () => resolve());
          req.on('error', () => undefined);
        }));
        // A WebSocket opened, used once, and dropped without a close frame half the time.
        work.push((async () => {
          const ws = new WebSocket(`ws://127.0.0.1:${edgePort}/`, { headers: { host: 'app.sprites.localhost' } });
          await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
          ws.send('x');
          await new Promise((resolve) => ws.once('message', resolve));
          if (i % 2 === 0) ws.terminate();
          else ws.close();
          await new Promise((resolve) => ws.once('close', resolve));
        })());
      }
      await Promise.all(work);
    }
    await settle();
    await eventually(() => edge.stats().webSockets === 0 && owner.stats().webSockets === 0, 10_000, 'WebSockets to close');
    // Idle pooled sockets may differ by a few; a leak would grow with the 300 connections made.
    const after = await eventually(async () => {
      const count = await openFds();
      return count <= baseline + 8 ? count : undefined;
    }, 10_000, 'file descriptors back to the baseline');
    assert.ok(after <= baseline + 8, `fds ${baseline} -> ${after}`);
    assert.equal(edge.activity('app')?.webSockets, 0);
  });
});
