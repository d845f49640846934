import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CreateFlow, Placement, type PlacementMember, type PlacementSprites } from '../../node/placement/index.ts';

type MemberFields = Partial<Omit<PlacementMember, 'id' | 'row'> & PlacementMember['row']>;

/** A member as a peer's view shows it: alive, with an API, open and empty unless told otherwise. */
function member(id: string, fields: MemberFields = {}): PlacementMember {
  const { state = 'alive', self = false, link = `https://${id}.test`, drain = null, load = 0, capacity = 10, pool_ready = 0 } = fields;
  return { id, state, self, row: { link, drain, load, capacity, pool_ready } };
}

/** The sprite manager's few parts placement reads, with a record of what it asked for. */
class Sprites implements PlacementSprites {
  readonly records = new Map<string, { owner: string }>();
  readonly adopted: string[] = [];
  ready = 0;
  closed = false;
  /** Room under this peer's capacity (a closed peer has none). */
  room = true;

  hasRoom(): boolean {
    return !this.closed && this.room;
  }

  lookup(name: string): { owner: string } | undefined {
    return this.records.get(name);
  }

  async adopt(name: string): Promise<unknown> {
    this.adopted.push(name);
    return undefined;
  }

  poolStatus(): { ready: number } {
    return { ready: this.ready };
  }
}

/** Placement as peer `self` sees `others`. */
function view(self: string, others: PlacementMember[], sprites = new Sprites()): { placement: Placement; sprites: Sprites } {
  const members = [member(self, { self: true }), ...others];
  return { placement: new Placement({ mesh: { peerId: self, members: () => members }, sprites }), sprites };
}

const IDS = ['peer-a', 'peer-b', 'peer-c', 'peer-d', 'peer-e'];
const NAMES = Array.from({ length: 40 }, (_, i) => `sprite-${i}`);

test('every peer ranks a name\'s arbiters the same way and stops at itself', () => {
  for (const name of NAMES) {
    const lists = new Map(IDS.map((self) => {
      const others = IDS.filter((id) => id !== self).map((id) => member(id));
      return [self, view(self, others).placement.arbiters(name).map((t) => t.peer)];
    }));
    // The top peer asks nobody; every other peer's list followed by itself is a prefix of one ranking.
    const ranking = [...lists.entries()].map(([self, list]) => [...list, self]).sort((a, b) => b.length - a.length)[0]!;
    assert.equal(new Set(ranking).size, IDS.length, name);
    for (const [self, list] of lists) {
      assert.deepEqual([...list, self], ranking.slice(0, list.length + 1), `${name} from ${self}`);
      assert.ok(!list.includes(self));
    }
    // The member list's order does not matter, and a second call gives the same answer.
    const shuffled = view('peer-c', ['peer-e', 'peer-a', 'peer-d', 'peer-b'].map((id) => member(id))).placement;
    assert.deepEqual(shuffled.arbiters(name), view('peer-c', ['peer-a', 'peer-b', 'peer-d', 'peer-e'].map((id) => member(id))).placement.arbiters(name));
    assert.deepEqual(shuffled.arbiters(name), shuffled.arbiters(name));
  }
});

test('arbiters are live peers with a known API, and each target carries the peer\'s API', () => {
  const others = [member('peer-b', { state: 'suspect' }), member('peer-c', { state: 'down' }), member('peer-d', { link: '' }), member('peer-e')];
  const { placement } = view('peer-a', others);
  for (const name of NAMES) {
    for (const target of placement.arbiters(name)) assert.deepEqual(target, { peer: 'peer-e', link: 'https://peer-e.test' });
  }
  // Somewhere in 40 names peer-e ranks above peer-a, somewhere below.
  const counts = NAMES.map((name) => placement.arbiters(name).length);
  assert.ok(counts.includes(0) && counts.includes(1));
});

test('target prefers the asked peer when it had a warm sprite, then here, then the least loaded warm peer', () => {
  const others = [member('peer-b', { load: 3, pool_ready: 1 }), member('peer-c', { load: 1, pool_ready: 1 }), member('peer-d', { load: 1, pool_ready: 2 }), member('peer-e', { load: 0 })];
  const { placement, sprites } = view('peer-a', others);
  sprites.ready = 1;
  assert.deepEqual(placement.target({ peer: 'peer-e', warm: true }), { peer: 'peer-e', link: 'https://peer-e.test' });
  assert.equal(placement.target({ peer: 'peer-e', warm: false }), 'here');
  assert.equal(placement.target(), 'here');
  sprites.ready = 0;
  // Least loaded among those with warm capacity; peer-c and peer-d tie on load, peer-c wins by id.
  assert.deepEqual(placement.target(), { peer: 'peer-c', link: 'https://peer-c.test' });
  assert.deepEqual(placement.target({ peer: 'peer-e', warm: false }), { peer: 'peer-c', link: 'https://peer-c.test' });
  // A draining peer here counts as having no warm sprite.
  sprites.ready = 1;
  sprites.closed = true;
  assert.equal(placement.warmHere(), false);
  assert.deepEqual(placement.target(), { peer: 'peer-c', link: 'https://peer-c.test' });
});

test('target leaves out draining, full and dead peers', () => {
  const others = [
    member('peer-b', { pool_ready: 1, drain: 'draining' }), member('peer-c', { pool_ready: 1, load: 10, capacity: 10 }),
    member('peer-d', { pool_ready: 1, state: 'down' }), member('peer-e', { pool_ready: 1, state: 'suspect' }),
  ];
  const { placement } = view('peer-a', others);
  assert.equal(placement.target({ peer: 'peer-b', warm: true }), 'here');
  assert.equal(placement.target({ peer: 'peer-c', warm: true }), 'here');
  assert.equal(placement.handOffTarget(), undefined);
});

test('with no warm sprite anywhere a create goes cold: to the asked peer, else here, else any open peer', () => {
  const others = [member('peer-b', { load: 2 }), member('peer-c', { load: 1 })];
  const { placement, sprites } = view('peer-a', others);
  assert.deepEqual(placement.target({ peer: 'peer-b', warm: false }), { peer: 'peer-b', link: 'https://peer-b.test' });
  assert.equal(placement.target(), 'here');
  assert.equal(placement.target({ peer: 'peer-gone', warm: false }), 'here');
  sprites.closed = true;
  assert.deepEqual(placement.target(), { peer: 'peer-c', link: 'https://peer-c.test' });
  assert.deepEqual(placement.handOffTarget(), { peer: 'peer-c', link: 'https://peer-c.test' });
  const alone = view('peer-a', []);
  alone.sprites.closed = true;
  assert.equal(alone.placement.target(), undefined);
});

test('a full peer neither keeps a create nor says it has a warm sprite; with no room anywhere the create stays here', () => {
  const others = [member('peer-b', { load: 2, capacity: 2, pool_ready: 1 }), member('peer-c', { load: 1, capacity: 2 })];
  const { placement, sprites } = view('peer-a', others);
  sprites.ready = 1;
  sprites.room = false;
  assert.equal(placement.warmHere(), false);
  assert.deepEqual(placement.target(), { peer: 'peer-c', link: 'https://peer-c.test' }, 'the open peer, cold');
  const crowded = view('peer-a', [member('peer-b', { load: 2, capacity: 2, pool_ready: 1 })]);
  crowded.sprites.room = false;
  assert.equal(crowded.placement.target(), 'here', 'here, where the create waits or is refused');
});

test('ownerOf hands a sprite to its live owner and takes it over from a dead one', async () => {
  const others = [member('peer-b'), member('peer-c', { state: 'suspect' }), member('peer-d', { state: 'down' }), member('peer-e', { link: '' })];
  const { placement, sprites } = view('peer-a', others);
  for (const [name, owner] of [['mine', 'peer-a'], ['on-b', 'peer-b'], ['on-c', 'peer-c'], ['on-d', 'peer-d'], ['on-e', 'peer-e'], ['on-gone', 'peer-gone']]) {
    sprites.records.set(name!, { owner: owner! });
  }
  assert.equal(await placement.ownerOf('unknown'), undefined);
  assert.equal(await placement.ownerOf('mine'), undefined);
  assert.deepEqual(await placement.ownerOf('on-b'), { peer: 'peer-b', link: 'https://peer-b.test' });
  // Suspect is not down: the request still goes to the owner.
  assert.deepEqual(await placement.ownerOf('on-c'), { peer: 'peer-c', link: 'https://peer-c.test' });
  assert.deepEqual(sprites.adopted, []);
  assert.equal(await placement.ownerOf('on-d'), undefined);
  assert.equal(await placement.ownerOf('on-gone'), undefined);
  assert.deepEqual(sprites.adopted, ['on-d', 'on-gone']);
  await assert.rejects(placement.ownerOf('on-e'), { code: 'ERR_OWNER_UNREACHABLE' });
});

/** A create flow whose sprites are the stub's records; placement and peers are not asked. */
function arbiter(): { flow: CreateFlow; records: Map<string, unknown> } {
  const records = new Map<string, unknown>();
  const unused = (): never => assert.fail('not used by arbitrate');
  const flow = new CreateFlow({
    placement: { arbiters: unused, target: unused, warmHere: unused },
    sprites: { lookup: (name) => records.get(name), create: unused },
    peers: { arbitrateCreate: unused, placeCreate: unused },
    peerId: 'peer-a',
  });
  return { flow, records };
}

test('arbitrate refuses a name that exists or is being created', async () => {
  const { flow, records } = arbiter();
  records.set('taken', {});
  let ran = false;
  await assert.rejects(flow.arbitrate('taken', async () => (ran = true)), { code: 'ERR_NAME_TAKEN' });
  assert.equal(ran, false);
  let finish!: (created: boolean) => void;
  const first = flow.arbitrate('racing', () => new Promise((resolve) => (finish = resolve)));
  await assert.rejects(flow.arbitrate('racing', async () => true), { code: 'ERR_NAME_TAKEN' });
  // Created elsewhere: the record has not reached this replica, so the name stays reserved.
  finish(true);
  await first;
  await assert.rejects(flow.arbitrate('racing', async () => true), { code: 'ERR_NAME_TAKEN' });
});

test('arbitrate releases the name when the create fails or declines', async () => {
  const { flow, records } = arbiter();
  await assert.rejects(flow.arbitrate('flaky', async () => {
    throw new Error('no room');
  }), /no room/);
  await flow.arbitrate('flaky', async () => false);
  // Created here: the record is in the replica at once, and the reservation is let go.
  await flow.arbitrate('flaky', async () => {
    records.set('flaky', {});
    return true;
  });
  records.delete('flaky');
  await flow.arbitrate('flaky', async () => true);
});
