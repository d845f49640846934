import assert from 'node:assert/strict';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { readBody, sendError, sendJson } from '../../node/api/http.ts';
import { CreateFlow, HopKeys, PeerClient, Placement, readHop, type PlacementMember } from '../../node/placement/index.ts';
import { testLink } from '../helpers/links.ts';

/** The hop key every stand-in derives (from the swarm key, in a peer). */
const SECRET = Buffer.from('test-secret');
import type { SpriteRecord } from '../../node/records/index.ts';

/**
 * The create protocol between peers over real HTTP: tiny node:http servers stand in for peers,
 * each serving POST /v1/sprites with its own CreateFlow, Placement and a map for its replica (no
 * gossip between them, so a record stays where it was created).
 */

interface StandIn {
  id: string;
  url: string;
  /** Warm sprites in its pool, as its gossiped row shows them. */
  ready: number;
  records: Map<string, SpriteRecord>;
  /** The headers of every request it received, in order, with the role of the hop that checked out (`verified`). */
  seen: (IncomingHttpHeaders & { verified?: string })[];
  placement: Placement;
  server: http.Server;
  /** Its peer link listener (mutual TLS), where other stand-ins hand creates over. */
  link: https.Server;
  linkUrl: string;
  client: PeerClient;
}

const peers: StandIn[] = [];

/** Every stand-in alive and open, as `self` sees them; `extra` members too (unreachable ones). */
function members(self: string, extra: PlacementMember[]): PlacementMember[] {
  return [
    ...peers.map((p) => ({ id: p.id, state: 'alive' as const, self: p.id === self, row: { link: p.linkUrl, drain: null, load: p.records.size, capacity: 10, pool_ready: p.ready } })),
    ...extra,
  ];
}

async function standIn(id: string, ready: number, extra: PlacementMember[] = []): Promise<StandIn> {
  const records = new Map<string, SpriteRecord>();
  const sprites = {
    lookup: (name: string) => records.get(name),
    create: async ({ name, org }: { name: string; org: string }) => {
      const record = { name, org, owner: id } as SpriteRecord;
      records.set(name, record);
      return record;
    },
    adopt: async () => undefined,
    poolStatus: () => ({ ready: peer.ready }),
    hasRoom: () => true,
    closed: false,
  };
  const placement = new Placement({ mesh: { peerId: id, members: () => members(id, extra) }, sprites });
  const credentials = await testLink(id);
  const hops = new HopKeys(SECRET, id);
  const client = new PeerClient({ hops, link: credentials });
  const flow = new CreateFlow({ placement, sprites, peers: client, peerId: id });
  const seen: (IncomingHttpHeaders & { verified?: string })[] = [];
  // What the API's create route does, without authentication; hops count on the link only.
  const serve = (req: IncomingMessage, res: ServerResponse, linkPeer: string | undefined): void => {
    const raw = { ...req.headers };
    if (!hops.admit(req, linkPeer)) {
      seen.push(raw);
      sendError(res, new Error('bad hop'));
      return;
    }
    seen.push({ ...raw, verified: readHop(req)?.role });
    void (async () => {
      const body = await readBody(req);
      const { name } = JSON.parse(body.toString()) as { name: string };
      const record = await flow.create({ name, org: 'org-1' }, { req, res, body });
      if (record) sendJson(res, 201, record);
    })().catch((error: unknown) => sendError(res, error));
  };
  const server = http.createServer((req, res) => serve(req, res, undefined));
  const link = https.createServer(credentials.server(), (req, res) => serve(req, res, credentials.peerOf(req.socket)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => link.listen(0, '127.0.0.1', resolve));
  const peer: StandIn = {
    id, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, ready, records, seen, placement, server, client,
    link, linkUrl: `https://127.0.0.1:${(link.address() as AddressInfo).port}`,
  };
  peers.push(peer);
  return peer;
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The first name for which `self`'s arbiters are exactly `expected`. */
function nameWith(self: StandIn, expected: string[]): string {
  for (let i = 0; ; i++) {
    const name = `sprite-${i}`;
    if (JSON.stringify(self.placement.arbiters(name).map((t) => t.peer)) === JSON.stringify(expected)) return name;
  }
}

async function create(peer: StandIn, name: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${peer.url}/v1/sprites`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
  return { status: res.status, body: await res.json() };
}

/** Sends a create as an arbiter receives it, from peer-x over the link; resolves with the informational statuses seen and the final one, or the error. */
async function asArbiter(peer: StandIn, name: string, deadline: number): Promise<{ informational: number[]; status?: number; error?: string }> {
  const credentials = await testLink('peer-x');
  const hop = new HopKeys(SECRET, 'peer-x').headers('arbiter', 'POST', '/v1/sprites', { origin: { peer: 'peer-elsewhere', warm: false }, deadline });
  return new Promise((resolve) => {
    const informational: number[] = [];
    const body = JSON.stringify({ name });
    const req = https.request(`${peer.linkUrl}/v1/sprites`, {
      ...credentials.client(peer.id), method: 'POST', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...hop },
    });
    req.on('information', (info) => informational.push(info.statusCode));
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ informational, status: res.statusCode }));
    });
    req.on('error', (error) => resolve({ informational, error: error.message }));
    req.end(body);
  });
}

let a: StandIn;
let b: StandIn;

before(async () => {
  const unreachable = member('peer-z', `https://127.0.0.1:${await closedPort()}`);
  a = await standIn('peer-a', 1, [unreachable]);
  b = await standIn('peer-b', 0);
});

after(async () => {
  for (const peer of peers) {
    peer.client.close();
    for (const server of [peer.server, peer.link]) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }
});

function member(id: string, link: string): PlacementMember {
  return { id, state: 'alive', self: false, row: { link, drain: null, load: 0, capacity: 10, pool_ready: 0 } };
}

test('a create goes to the name\'s arbiter, which places it on the asked peer with a warm sprite', async () => {
  const name = nameWith(a, ['peer-b']);
  const seenA = a.seen.length;
  const seenB = b.seen.length;
  const before = Date.now();
  const answer = await create(a, name);
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  assert.equal(answer.body.owner, 'peer-a');
  const [arbiterHop, ...more] = b.seen.slice(seenB);
  assert.equal(more.length, 0);
  assert.match(String(arbiterHop!['x-sprite-hop']), /^arbiter peer-a \d+ [0-9a-f]{64}$/);
  assert.equal(arbiterHop!.verified, 'arbiter', 'signed by peer-a for this request, over its link');
  assert.equal(arbiterHop!['x-sprite-origin'], 'peer-a;warm');
  const deadline = Number(arbiterHop!['x-sprite-deadline']);
  assert.ok(deadline >= before + 5000 && deadline <= Date.now() + 5000, `deadline ${deadline}`);
  const [client, placed] = a.seen.slice(seenA);
  assert.equal(client!['x-sprite-hop'], undefined);
  assert.equal(client!.verified, undefined);
  assert.equal(placed!.verified, 'place');
  assert.ok(a.records.has(name) && !b.records.has(name));
});

test('the arbiter keeps a name it placed elsewhere: a second create on any peer is refused', async () => {
  const name = nameWith(a, ['peer-b']);
  assert.equal(a.records.has(name), true, 'created by the test before');
  // The record never reaches peer-b's replica here: its reservation alone refuses the name.
  for (const peer of [b, a]) {
    const answer = await create(peer, name);
    assert.equal(answer.status, 409);
    assert.equal(answer.body.error, 'ERR_NAME_TAKEN');
  }
});

test('a cold create without a warm sprite anywhere lands on the peer the client asked', async () => {
  a.ready = 0;
  try {
    const name = nameWith(b, ['peer-a']);
    const answer = await create(b, name);
    assert.equal(answer.status, 201);
    assert.equal(answer.body.owner, 'peer-b');
  } finally {
    a.ready = 1;
  }
});

test('an arbiter that cannot be reached is passed over, down to this peer', async () => {
  const name = nameWith(a, ['peer-z']);
  const seenB = b.seen.length;
  const answer = await create(a, name);
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  assert.equal(answer.body.owner, 'peer-a');
  assert.equal(b.seen.length, seenB);
});

test('an arbiter acknowledges with 102 Processing, and drops a create whose deadline has passed', async () => {
  const late = await asArbiter(b, 'late-one', Date.now() - 1);
  assert.ok(late.error, `answered ${late.status}`);
  assert.equal(b.records.has('late-one'), false);
  const timely = await asArbiter(b, 'timely-one', Date.now() + 5000);
  assert.deepEqual(timely.informational, [102]);
  assert.equal(timely.status, 201);
});
