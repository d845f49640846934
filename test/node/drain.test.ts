import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Drain, type DrainSprites, type DrainState } from '../../node/drain.ts';
import { HopKeys, PeerClient, readHop, type PeerTarget } from '../../node/placement/index.ts';
import { testLink } from '../helpers/links.ts';

/** The hop key both stand-ins derive (from the swarm key, in a peer). */
const SECRET = Buffer.from('test-secret');
/** The draining peer's and the adopting peer's link credentials. */
const linkA = await testLink('peer-a');
const linkB = await testLink('peer-b');
import { memoryLogger } from '../../vm/logger.ts';

/** What the target peer's API received: one entry per request. */
interface Received {
  method: string | undefined;
  url: string | undefined;
  authorization: string | undefined;
  /** The role of the signed hop it came with, checked as the receiving peer checks it (undefined: none, or it did not check out). */
  hop: string | undefined;
  contentType: string | undefined;
  body: unknown;
}

/** A stand-in for the peer that adopts: records each request and answers with `status(request)`. */
async function targetPeer(status: (received: Received) => number = () => 200): Promise<{ target: PeerTarget; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer(linkB.server(), (req, res) => {
    const hops = new HopKeys(SECRET, 'peer-b');
    const ok = hops.admit(req, linkB.peerOf(req.socket));
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const entry: Received = {
        method: req.method, url: req.url, authorization: req.headers.authorization, hop: ok ? readHop(req)?.role : undefined, contentType: req.headers['content-type'],
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
      };
      received.push(entry);
      const code = status(entry);
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(code === 200 ? '{}' : '{"error":{"code":"ERR_INTERNAL"}}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { target: { peer: 'peer-b', link: `https://127.0.0.1:${port}` }, received, server };
}

/** A sprite manager stand-in: owns sprites (name -> running), logs what drain asks, and hands off through `adopt`. */
class Sprites implements DrainSprites {
  readonly owned: Map<string, boolean>;
  readonly events: string[];

  constructor(owned: Record<string, boolean>, events: string[]) {
    this.owned = new Map(Object.entries(owned));
    this.events = events;
  }

  async close(): Promise<void> {
    this.events.push('close');
  }

  ownedNames(): string[] {
    return [...this.owned.keys()];
  }

  async handOff(name: string, adopt: (start: boolean) => Promise<void>): Promise<void> {
    this.events.push(`handOff ${name}`);
    // Like the real hand-off: the sprite stays here when the other peer does not take it.
    await adopt(this.owned.get(name)!);
    this.owned.delete(name);
  }
}

function drainOf(sprites: Sprites, handOffTarget: () => PeerTarget | undefined, events: string[]): { drain: Drain; published: DrainState[]; logger: ReturnType<typeof memoryLogger> } {
  const published: DrainState[] = [];
  const logger = memoryLogger();
  const drain = new Drain({
    sprites, placement: { handOffTarget }, peers: new PeerClient({ hops: new HopKeys(SECRET, 'peer-a'), link: linkA }), logger, retryMs: 1,
    publish: (state) => {
      published.push(state);
      events.push(`publish ${state}`);
    },
  });
  return { drain, published, logger };
}

test('drain publishes draining, closes, hands every sprite to the target, then publishes drained', async () => {
  const { target, received, server } = await targetPeer();
  try {
    const events: string[] = [];
    const sprites = new Sprites({ web: true, idle: false }, events);
    const { drain, published } = drainOf(sprites, () => target, events);
    assert.equal(drain.state, null);
    const run = drain.start();
    assert.equal(drain.start(), run, 'a second start joins the first');
    await run;
    assert.deepEqual(published, ['draining', 'drained']);
    assert.equal(drain.state, 'drained');
    assert.deepEqual(events, ['publish draining', 'close', 'handOff web', 'handOff idle', 'publish drained']);
    assert.equal(sprites.owned.size, 0);
    assert.deepEqual(received, [
      // Between peers over the link: no token, a hop signed by the draining peer for this path.
      { method: 'POST', url: '/v1/sprites/web/adopt', authorization: undefined, hop: 'adopt', contentType: 'application/json', body: { start: true } },
      { method: 'POST', url: '/v1/sprites/idle/adopt', authorization: undefined, hop: 'adopt', contentType: 'application/json', body: { start: false } },
    ]);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

test('a hand-off the target refuses is retried in the next round', async () => {
  let refused = 0;
  const { target, received, server } = await targetPeer(() => (refused++ === 0 ? 500 : 200));
  try {
    const events: string[] = [];
    const sprites = new Sprites({ web: true }, events);
    const { drain, published, logger } = drainOf(sprites, () => target, events);
    await drain.start();
    assert.deepEqual(events, ['publish draining', 'close', 'handOff web', 'handOff web', 'publish drained']);
    assert.deepEqual(received.map((r) => r.url), ['/v1/sprites/web/adopt', '/v1/sprites/web/adopt']);
    assert.deepEqual(published, ['draining', 'drained']);
    const warning = logger.lines.find((line) => line.message === 'moving a sprite failed; will retry');
    assert.ok(warning, 'the failed move is logged');
    assert.equal(warning.sprite, 'web');
    assert.equal(warning.to, 'peer-b');
    assert.match(String(warning.error), /peer peer-b answered 500/);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

test('with no peer to take a sprite, drain waits and tries again', async () => {
  const { target, received, server } = await targetPeer();
  try {
    const events: string[] = [];
    const sprites = new Sprites({ web: false }, events);
    let asked = 0;
    const { drain, published } = drainOf(sprites, () => (++asked < 3 ? undefined : target), events);
    await drain.start();
    assert.equal(asked, 3);
    assert.deepEqual(events, ['publish draining', 'close', 'handOff web', 'publish drained']);
    assert.deepEqual(received.map((r) => r.body), [{ start: false }]);
    assert.deepEqual(published, ['draining', 'drained']);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

test('stop ends the retry loop without publishing drained', async () => {
  const events: string[] = [];
  const sprites = new Sprites({ web: true }, events);
  let asked = 0;
  let drain: Drain | undefined;
  const made = drainOf(sprites, () => {
    // The second round stops the drain: the loop must end without another round.
    if (++asked === 2) drain!.stop();
    return undefined;
  }, events);
  drain = made.drain;
  await drain.start();
  assert.equal(asked, 2);
  assert.deepEqual(made.published, ['draining']);
  assert.equal(drain.state, 'draining');
  assert.deepEqual(events, ['publish draining', 'close']);
  assert.deepEqual([...sprites.owned.keys()], ['web'], 'the sprite stays here');
});
