import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createOn, eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { probeInSprite } from '../helpers/probe.ts';
import { request } from '../proxy/helpers.ts';
import { startBackend, type StoreBackend } from '../vm/storage/helpers.ts';

/** Fast failure detection, so a killed peer is down within seconds. */
const MEMBERSHIP = ['--suspect-after-ms', '2000', '--down-after-ms', '6000'];

describe('three peers on one object store', () => {
  let store: StoreBackend;
  const peers: PeerProcess[] = [];
  const ids = new Map<PeerProcess, string>();
  const start = async (options: { poolDepth: number; dataDir?: string }): Promise<PeerProcess> => {
    const peer = await startPeer({ ...options, join: peers[0], args: ['--object-store', store.url, ...MEMBERSHIP] });
    ids.set(peer, (await peer.api('GET', '/v1/health')).body.peer as string);
    return peer;
  };
  const exec = async (peer: PeerProcess, name: string, script: string): Promise<string> => {
    const result = await peer.cli(['exec', name, '--', 'sh', '-c', script]);
    assert.equal(result.code, 0, `exec on ${name}: ${result.stderr}`);
    return result.stdout;
  };
  const byId = (id: string): PeerProcess => [...ids].find(([, peerId]) => peerId === id)![0];
  /** Service names in the durable sprite's record as `peer`'s replica has it. */
  const mirroredServices = async (peer: PeerProcess): Promise<string[]> => (await peer.api('GET', '/v1/sprites/durable')).body.services ?? [];

  before(async () => {
    store = await startBackend('s3');
    // The first peer has no warm pool: creates sent to it must be placed on the others.
    peers.push(await start({ poolDepth: 0 }));
    peers.push(await start({ poolDepth: 1 }));
    peers.push(await start({ poolDepth: 1 }));
    for (const peer of peers) {
      await eventually(async () => {
        const { body } = await peer.api('GET', '/v1/peers');
        return (body.peers as { state: string; pool_ready: number }[]).filter((p) => p.state === 'alive' && p.pool_ready >= 0).length === 3;
      }, 30_000, 'three alive members');
    }
    // Warm capacity is gossiped with the heartbeat: wait until the first peer sees it.
    await eventually(async () => {
      const { body } = await peers[0]!.api('GET', '/v1/peers');
      return (body.peers as { pool_ready: number }[]).filter((p) => p.pool_ready > 0).length === 2;
    }, 30_000, 'warm capacity gossiped');
  });
  after(async () => {
    for (const peer of peers) {
      await peer.stop();
      await removeDataDir(peer.dataDir);
    }
    await store?.stop();
  });

  test('a create sent to a peer without warm capacity runs on a peer with some, and says which', async () => {
    const created = await peers[0]!.api('POST', '/v1/sprites', { name: 'placed' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.notEqual(created.body.owner, ids.get(peers[0]!));
    assert.ok([ids.get(peers[1]!), ids.get(peers[2]!)].includes(created.body.owner));
    const listed = await peers[0]!.api('GET', '/v1/sprites/placed');
    assert.equal(listed.body.owner_state, 'alive');
  });

  test('a create sent to a peer with a warm sprite is served from its own pool, whoever arbitrates the name', async () => {
    for (const [i, peer] of [peers[1]!, peers[2]!].entries()) {
      await eventually(async () => (await peer.api('GET', '/v1/pool')).body.ready >= 1, 60_000, 'a warm sprite');
      const created = await peer.api('POST', '/v1/sprites', { name: `homegrown-${i}` });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.owner, ids.get(peer));
      assert.equal((await peer.api('DELETE', `/v1/sprites/homegrown-${i}`)).status, 204);
    }
  });

  test('exec, checkpoint, restore, url and destroy work through a peer that does not own the sprite', async () => {
    const front = peers[0]!;
    assert.equal(await exec(front, 'placed', 'echo one > /note && sync && cat /note'), 'one\n');
    const checkpoint = await front.cli(['checkpoint', 'create', 'placed', '--json']);
    assert.equal(checkpoint.code, 0, checkpoint.stderr);
    const id = JSON.parse(checkpoint.stdout).id as string;
    await exec(front, 'placed', 'echo two > /note && sync');
    const restored = await front.cli(['restore', 'placed', id]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal(await exec(front, 'placed', 'cat /note'), 'one\n');
    const url = await front.api('PUT', '/v1/sprites/placed', { url_settings: { auth: 'public' } });
    assert.equal(url.status, 200, JSON.stringify(url.body));
    const destroyed = await front.api('DELETE', '/v1/sprites/placed');
    assert.equal(destroyed.status, 204);
    for (const peer of peers) await eventually(async () => (await peer.api('GET', '/v1/sprites/placed')).status === 404, 10_000, 'the record gone everywhere');
  });

  test('two creates of one name on different peers at once: exactly one succeeds', async () => {
    const answers = await Promise.all(peers.map((peer) => peer.api('POST', '/v1/sprites', { name: 'contested' })));
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [201, 409, 409], JSON.stringify(answers.map((a) => a.body)));
    for (const answer of answers.filter((a) => a.status === 409)) assert.equal(answer.body.error, 'ERR_NAME_TAKEN');
    const owner = answers.find((a) => a.status === 201)!.body.owner as string;
    for (const peer of peers) await eventually(async () => (await peer.api('GET', '/v1/sprites/contested')).body.owner === owner, 10_000, 'one owner everywhere');
    assert.equal((await peers[0]!.api('DELETE', '/v1/sprites/contested')).status, 204);
  });

  test('drain moves a peer\'s sprites, disks and all, to the others and takes no new ones', async () => {
    const created = await peers[1]!.api('POST', '/v1/sprites', { name: 'mover' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const drained = byId(created.body.owner as string);
    const sum = await exec(drained, 'mover', 'head -c 1048576 /dev/urandom > /moved.bin && sync && md5sum /moved.bin');
    const stopped = await drained.api('POST', '/v1/sprites', { name: 'parked' });
    assert.equal(stopped.status, 201, JSON.stringify(stopped.body));
    const parkedOwner = byId(stopped.body.owner as string);
    assert.equal((await parkedOwner.api('POST', '/v1/sprites/parked/stop')).status, 200);
    const front = peers.find((p) => p !== drained)!;
    const result = await front.cli(['peer', 'drain', ids.get(drained)!]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /drained /);
    const moved = (await front.api('GET', '/v1/sprites/mover')).body;
    assert.notEqual(moved.owner, ids.get(drained));
    assert.equal(moved.status, 'running');
    assert.equal(await exec(front, 'mover', 'md5sum /moved.bin'), sum);
    if (parkedOwner === drained) {
      const parked = (await front.api('GET', '/v1/sprites/parked')).body;
      assert.notEqual(parked.owner, ids.get(drained));
      assert.equal(parked.status, 'stopped');
    }
    const listed = await front.cli(['peer', 'list']);
    assert.match(listed.stdout, /alive, drained/);
    const after = await drained.api('POST', '/v1/sprites', { name: 'after-drain' });
    assert.equal(after.status, 201, JSON.stringify(after.body));
    assert.notEqual(after.body.owner, ids.get(drained));
    for (const name of ['mover', 'parked', 'after-drain']) assert.equal((await front.api('DELETE', `/v1/sprites/${name}`)).status, 204);
  });

  test('kill -9 the owner: the next request takes the sprite over with every fsync\'d byte, and the old owner drops its copy', async () => {
    const created = await peers[0]!.api('POST', '/v1/sprites', { name: 'durable' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const ownerId = created.body.owner as string;
    const owner = byId(ownerId);
    const survivor = peers.find((p) => p !== owner)!;
    // 3 MiB of pseudo-random bytes, fsync'd; their checksum is the proof.
    const sum = await exec(survivor, 'durable', 'head -c 3145728 /dev/urandom > /data.bin && fsync /data.bin 2>/dev/null || sync; md5sum /data.bin');
    await exec(survivor, 'durable', 'mkdir -p /www && echo durable > /www/index.html && sync');
    const service = await survivor.cli(['services', 'create', 'durable', 'keeper', '--http-port', '8080', '--', 'httpd', '-f', '-p', '8080', '-h', '/www']);
    assert.equal(service.code, 0, service.stderr);
    // The owner mirrors service definitions into the record; wait until the survivor has them.
    await eventually(async () => (await mirroredServices(survivor)).includes('keeper'), 10_000, 'services mirrored');
    const proxyPort = Number(new URL((await survivor.api('GET', '/v1/sprites/durable')).body.http_url).port);
    const page = () => request(proxyPort, 'durable.sprites.localhost', '/', { headers: { authorization: `Bearer ${survivor.token}` } });
    // A network policy set through the survivor (the owner applies it) follows the sprite.
    const lookup = async (): Promise<string> => (await survivor.cli(['exec', 'durable', '--', ...probeInSprite('resolve', 'any.test')])).stdout;
    assert.equal((await survivor.api('POST', '/v1/sprites/durable/policy/network', { rules: [{ domain: '*', action: 'deny' }] })).status, 204);
    assert.equal(await lookup(), 'EREFUSED\n');
    await owner.kill();
    await eventually(async () => (await survivor.api('GET', '/v1/sprites/durable')).body.owner_state === 'down', 30_000, 'the owner seen down');
    // The first request through the survivor's proxy takes the sprite over and is held until its
    // service listens again: it gets the page, not an error.
    const answer = await page();
    assert.equal(answer.status, 200, answer.body);
    assert.equal(answer.body, 'durable\n');
    assert.equal(await exec(survivor, 'durable', 'md5sum /data.bin'), sum);
    const record = (await survivor.api('GET', '/v1/sprites/durable')).body;
    assert.equal(record.owner, ids.get(survivor));
    assert.equal(record.epoch, created.body.epoch + 1);
    assert.equal(record.status, 'running');
    const services = (await survivor.api('GET', '/v1/sprites/durable/services')).body as { name: string }[];
    assert.deepEqual(services.map((svc) => svc.name), ['keeper']);
    assert.equal(await lookup(), 'EREFUSED\n', 'the new owner enforces the policy');
    assert.equal((await survivor.api('POST', '/v1/sprites/durable/policy/network', { rules: [] })).status, 204);
    // Allowed now: the lookup goes upstream (tests point it at loopback, where no server answers).
    assert.notEqual(await lookup(), 'EREFUSED\n');

    // The old owner comes back on the same data dir: it sees the higher epoch and leaves the sprite alone.
    peers.splice(peers.indexOf(owner), 1);
    const back = await start({ poolDepth: 1, dataDir: owner.dataDir });
    peers.push(back);
    assert.equal(ids.get(back), ownerId);
    const seen = await eventually(async () => {
      const { body } = await back.api('GET', '/v1/sprites/durable');
      return body.owner === ids.get(survivor) ? body : undefined;
    }, 20_000, 'the returning peer sees the new owner');
    assert.equal(seen.epoch, record.epoch);
    assert.equal(await exec(back, 'durable', 'md5sum /data.bin'), sum);
    assert.equal((await survivor.api('GET', '/v1/sprites/durable')).body.owner, ids.get(survivor));
    assert.equal((await back.api('DELETE', '/v1/sprites/durable')).status, 204);
  });

  test('a sprite whose peer is down and whose disk is in a store no other peer uses fails with 503, not a hang', async () => {
    const loner = await startPeer({ poolDepth: 0, join: peers[0], args: MEMBERSHIP });
    try {
      // Placed on the loner directly: its disk is in the loner's own file:// store.
      await createOn(loner, 'stranded');
      await eventually(async () => (await peers[0]!.api('GET', '/v1/sprites/stranded')).status === 200, 10_000, 'the record replicated');
      await loner.kill();
      await eventually(async () => (await peers[0]!.api('GET', '/v1/sprites/stranded')).body.owner_state === 'down', 30_000, 'the loner seen down');
      const answer = await peers[0]!.api('POST', '/v1/sprites/stranded/start');
      assert.equal(answer.status, 503, JSON.stringify(answer.body));
      assert.equal(answer.body.error, 'ERR_SPRITE_UNRECOVERABLE');
      assert.match(answer.body.message, /not in this peer's store/);
    } finally {
      // The killed peer left its sandbox's mounts: a restart on its data dir sweeps them.
      await loner.kill();
      const again = await startPeer({ dataDir: loner.dataDir, poolDepth: 0, join: peers[0], args: MEMBERSHIP });
      await again.api('DELETE', '/v1/sprites/stranded');
      await again.stop();
      await removeDataDir(loner.dataDir);
    }
  });
});
