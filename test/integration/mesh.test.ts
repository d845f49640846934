import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

interface PeerView {
  id: string;
  state: string;
}

describe('five peers in one mesh', () => {
  const peers: PeerProcess[] = [];
  const alive = async (peer: PeerProcess): Promise<PeerView[]> => {
    const { status, body } = await peer.api('GET', '/v1/peers');
    assert.equal(status, 200, JSON.stringify(body));
    return (body.peers as PeerView[]).filter((p) => p.state === 'alive');
  };

  before(async () => {
    const first = await startPeer({ poolDepth: 0 });
    peers.push(first);
    for (let i = 0; i < 4; i++) peers.push(await startPeer({ poolDepth: 0, join: first }));
    for (const peer of peers) await eventually(async () => (await alive(peer)).length === 5, 20_000, 'five alive members');
  });
  after(async () => {
    for (const peer of peers) {
      await peer.stop();
      await removeDataDir(peer.dataDir);
    }
  });

  test('peer list shows every member alive, from any peer', async () => {
    const result = await peers[3]!.cli(['peer', 'list', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const listed = JSON.parse(result.stdout).peers as PeerView[];
    assert.equal(listed.length, 5);
    assert.ok(listed.every((p) => p.state === 'alive'));
    const table = await peers[3]!.cli(['peer', 'list']);
    assert.equal(table.stdout.trim().split('\n').length, 6);
  });

  test('a sprite created on one peer is listed with its owner by every peer, with any peer\'s token', async () => {
    const owner = peers[1]!;
    const created = await owner.api('POST', '/v1/sprites', { name: 'shared' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const ownerId = created.body.owner as string;
    for (const peer of peers) {
      const seen = await eventually(async () => {
        // Tokens are replicated: the first peer's token works on every peer.
        const res = await fetch(`${peer.url}/v1/sprites`, { headers: { authorization: `Bearer ${peers[0]!.token}` } });
        if (res.status !== 200) return undefined;
        const body = (await res.json()) as { sprites: { name: string; owner: string }[] };
        return body.sprites.find((s) => s.name === 'shared');
      }, 10_000, 'the sprite on every peer');
      assert.equal(seen.owner, ownerId);
    }
    const listed = await peers[2]!.cli(['list']);
    assert.match(listed.stdout, new RegExp(`shared\\s+running\\s+${ownerId}`));
    // Any peer serves the sprite: the request is handed to its owner.
    const nonOwner = peers.find((peer) => peer.url !== owner.url)!;
    const elsewhere = await nonOwner.cli(['exec', 'shared', '--', 'hostname']);
    assert.equal(elsewhere.code, 0, elsewhere.stderr);
    assert.equal(elsewhere.stdout, 'shared\n');
    assert.equal((await owner.api('DELETE', '/v1/sprites/shared')).status, 204);
    for (const peer of peers) await eventually(async () => (await peer.api('GET', '/v1/sprites/shared')).status === 404, 10_000, 'delete everywhere');
  });

  test('mesh health shows heads for every site and no gaps once quiet', async () => {
    const health = await eventually(async () => {
      const { body } = await peers[2]!.api('GET', '/v1/mesh/health');
      return Object.keys(body.gaps).length === 0 && Object.keys(body.heads).length >= 5 ? body : undefined;
    }, 10_000, 'no gaps');
    assert.equal(health.members.length, 5);
    assert.equal(health.rejected_messages, 0);
    assert.deepEqual(health.store.dropped_rows, {}, 'every row real peers write fits the content rules');
    const status = await peers[2]!.cli(['peer', 'status']);
    assert.match(status.stdout, /members\s+5 alive of 5/);
  });

  test('a frozen peer misses writes, then converges after it thaws; a killed peer catches up after restart', async () => {
    const frozen = peers[4]!;
    frozen.process.kill('SIGSTOP');
    try {
      for (let i = 0; i < 5; i++) assert.equal((await peers[0]!.api('POST', '/v1/sprites', { name: `while-frozen-${i}` })).status, 201);
    } finally {
      frozen.process.kill('SIGCONT');
    }
    await eventually(async () => {
      const { body } = await frozen.api('GET', '/v1/sprites');
      return body.sprites.filter((s: { name: string }) => s.name.startsWith('while-frozen-')).length === 5;
    }, 15_000, 'frozen peer to converge');

    const killed = peers[3]!;
    await killed.kill();
    for (let i = 0; i < 3; i++) assert.equal((await peers[0]!.api('DELETE', `/v1/sprites/while-frozen-${i}`)).status, 204);
    const restarted = await startPeer({ dataDir: killed.dataDir, poolDepth: 0, join: peers[0]! });
    peers[3] = restarted;
    await eventually(async () => {
      const { body } = await restarted.api('GET', '/v1/sprites');
      const names = body.sprites.map((s: { name: string }) => s.name).filter((n: string) => n.startsWith('while-frozen-'));
      return names.length === 2 && names.includes('while-frozen-4');
    }, 15_000, 'restarted peer to catch up');
  });

  test('a peer with another swarm key cannot join', async () => {
    const outsider = await startPeer({ poolDepth: 0, joinAddrOnly: peers[0]! });
    try {
      await new Promise((resolve) => setTimeout(resolve, 3000));
      assert.deepEqual((await alive(outsider)).map((p) => p.id).length, 1);
      const members = (await peers[0]!.api('GET', '/v1/peers')).body.peers as PeerView[];
      assert.equal(members.length, 5);
    } finally {
      await outsider.stop();
      await removeDataDir(outsider.dataDir);
    }
  });
});
