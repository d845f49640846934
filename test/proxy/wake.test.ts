import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import type { EdgeProxy } from '../../proxy/index.ts';
import { eventually } from '../helpers/peer.ts';
import { FakeMesh, FakeSprites, portOf, putSprite, request, startTwoProxies, testProxy, TOKEN, type SpriteApp, type TwoProxies } from './helpers.ts';

const AUTH = { authorization: `Bearer ${TOKEN}` };

/** A gate a test opens when it has seen what it wanted. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('waking stopped sprites through the proxy', () => {
  let fixture: TwoProxies;
  let sprites: FakeSprites;
  let owner: EdgeProxy;
  let edgePort = 0;
  let ownerPort = 0;
  let app: SpriteApp;

  const sleep = (name: string): void => {
    sprites.sockets.delete(name);
    sprites.stopped.set(name, app.socketPath);
    putSprite(fixture.both, { name, owner: 'peer-owner', state: 'stopped' });
  };

  before(async () => {
    fixture = await startTwoProxies({ owner: { wake: { perSprite: 2, total: 3, waitMs: 60_000, failureHoldMs: 60_000 } } });
    ({ owner, edgePort, ownerPort, ownerSprites: sprites } = fixture);
    app = await fixture.app('app');
  });
  after(() => fixture?.stop());

  test('requests through another peer wake the sprite once, and all of them are answered', async () => {
    sleep('sleepy');
    const held = gate();
    sprites.gate = held.promise;
    const before = sprites.starts;
    const answers = Promise.all([1, 2].map(() => request(edgePort, 'sleepy.sprites.localhost', '/', { headers: AUTH })));
    await eventually(() => owner.stats().wake.waiting === 2, 5000, 'two requests waiting');
    held.open();
    for (const answer of await answers) assert.equal(answer.body, 'hello from app');
    assert.equal(sprites.starts - before, 1, 'one shared wake');
    sprites.gate = undefined;
  });

  test('the wait queue is bounded per sprite and per peer: overflow is 503 with Retry-After', async () => {
    sleep('one');
    sleep('two');
    sleep('three');
    const held = gate();
    sprites.gate = held.promise;
    const waiting = [
      request(ownerPort, 'one.sprites.localhost', '/', { headers: AUTH }),
      request(ownerPort, 'one.sprites.localhost', '/', { headers: AUTH }),
      request(ownerPort, 'two.sprites.localhost', '/', { headers: AUTH }),
    ];
    await eventually(() => owner.stats().wake.waiting === 3, 5000, 'three requests waiting');
    const perSprite = await request(ownerPort, 'one.sprites.localhost', '/', { headers: AUTH });
    assert.equal(perSprite.status, 503);
    assert.equal(perSprite.headers['x-sprite-error'], 'ERR_PROXY_BUSY');
    assert.ok(Number(perSprite.headers['retry-after']) > 0);
    const total = await request(ownerPort, 'three.sprites.localhost', '/', { headers: AUTH });
    assert.equal(total.headers['x-sprite-error'], 'ERR_PROXY_BUSY');
    assert.equal(owner.stats().wake.rejected, 2);
    held.open();
    for (const answer of await Promise.all(waiting)) assert.equal(answer.status, 200);
    sprites.gate = undefined;
  });

  test('a client that leaves while waiting frees its place in the queue', async () => {
    sleep('left');
    const held = gate();
    sprites.gate = held.promise;
    const req = http.get({ host: '127.0.0.1', port: ownerPort, path: '/', headers: { host: 'left.sprites.localhost', ...AUTH } });
    req.on('error', () => undefined);
    await eventually(() => owner.stats().wake.waiting === 1, 5000, 'one request waiting');
    req.destroy();
    await eventually(() => owner.stats().wake.waiting === 0, 5000, 'the queue to empty');
    held.open();
    sprites.gate = undefined;
  });

  test('a WebSocket wakes its sprite too', async () => {
    sleep('wsleepy');
    const ws = new WebSocket(`ws://127.0.0.1:${edgePort}/`, { headers: { host: 'wsleepy.sprites.localhost', ...AUTH } });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send('hi');
    const [reply] = await new Promise<[Buffer]>((resolve) => ws.once('message', (...args) => resolve(args as never)));
    assert.equal(reply.toString(), 'hi');
    ws.close();
  });

  test('a failed start answers 503 at once, and later requests do not retry for a while', async () => {
    sleep('doomed');
    sprites.failStart = 'no space left on device';
    const starts = sprites.starts;
    const first = await request(edgePort, 'doomed.sprites.localhost', '/', { headers: AUTH });
    assert.equal(first.status, 503);
    assert.equal(first.headers['x-sprite-error'], 'ERR_PROXY_WAKE_FAILED');
    assert.match(first.body, /no space left on device/);
    const second = await request(edgePort, 'doomed.sprites.localhost', '/', { headers: AUTH });
    assert.equal(second.headers['x-sprite-error'], 'ERR_PROXY_WAKE_FAILED');
    assert.equal(sprites.starts - starts, 1);
    sprites.failStart = undefined;
  });
});

describe('the wake wait limit', () => {
  test('a sprite that does not wake in time answers 503 with Retry-After', async () => {
    const mesh = new FakeMesh('peer-one');
    const sprites = new FakeSprites();
    const proxy = testProxy(mesh, sprites, { wake: { waitMs: 200 } });
    const held = gate();
    sprites.gate = held.promise;
    try {
      const port = portOf((await proxy.start()).http);
      putSprite([mesh], { name: 'slow', owner: 'peer-one', state: 'stopped' });
      sprites.stopped.set('slow', '/nonexistent.sock');
      const answer = await request(port, 'slow.sprites.localhost', '/', { headers: AUTH });
      assert.equal(answer.status, 503);
      assert.equal(answer.headers['x-sprite-error'], 'ERR_PROXY_WAKE_TIMEOUT');
      assert.ok(Number(answer.headers['retry-after']) > 0);
    } finally {
      held.open();
      await proxy.stop();
    }
  });
});
