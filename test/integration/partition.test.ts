import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Partition, type Side } from '../helpers/partition.ts';
import { createOn, eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { startBackend, type StoreBackend } from '../vm/storage/helpers.ts';

const MEMBERSHIP = ['--suspect-after-ms', '2000', '--down-after-ms', '6000'];

describe('a partition between peers on one object store', () => {
  let store: StoreBackend;
  let partition: Partition;
  let lone: Side;
  let pair: Side;
  const peers: PeerProcess[] = [];
  const ids: string[] = [];

  const exec = async (peer: PeerProcess, name: string, script: string): Promise<{ code: number; stdout: string; stderr: string }> => peer.cli(['exec', name, '--', 'sh', '-c', script]);
  const checkpoint = async (peer: PeerProcess, name: string, comment: string): Promise<string> => {
    const made = await peer.cli(['checkpoint', 'create', name, '-m', comment]);
    assert.equal(made.code, 0, made.stderr);
    return made.stdout.trim();
  };
  const memberStates = async (peer: PeerProcess): Promise<Record<string, string>> => {
    const { body } = await peer.api('GET', '/v1/peers');
    return Object.fromEntries((body.peers as { id: string; state: string }[]).map((p) => [p.id, p.state]));
  };
  /** Every port a peer listens on: API, mesh, proxy. */
  const ports = async (peer: PeerProcess): Promise<number[]> => {
    const { body } = await peer.api('GET', '/v1/peers');
    const self = (body.peers as { self: boolean; proxy: { http: string; https: string | null } | null }[]).find((p) => p.self)!;
    return [new URL(peer.url).port, /\/tcp\/(\d+)/.exec(peer.joinAddr)![1]!, new URL(self.proxy!.http).port, ...(self.proxy!.https ? [new URL(self.proxy!.https).port] : [])].map(Number);
  };

  before(async () => {
    store = await startBackend('s3');
    partition = await Partition.open('sprite_partition_test');
    lone = await partition.side('lone', 0x10_0101);
    pair = await partition.side('pair', 0x10_0102);
    for (const side of [lone, pair, pair]) {
      const peer = await startPeer({ poolDepth: 1, join: peers[0], cgroup: side.procs, args: ['--object-store', store.url, ...MEMBERSHIP] });
      peers.push(peer);
      ids.push((await peer.api('GET', '/v1/health')).body.peer as string);
      side.ports.push(...(await ports(peer)));
    }
    for (const peer of peers) await eventually(async () => Object.values(await memberStates(peer)).filter((s) => s === 'alive').length === 3, 30_000, 'three alive members');
  });
  after(async () => {
    await partition?.heal();
    for (const peer of peers) {
      await peer.stop();
      await removeDataDir(peer.dataDir);
    }
    await partition?.close();
    await store?.stop();
  });

  test('each side keeps serving what it owns; after heal there is one owner per sprite and every checkpoint is there', async () => {
    const [alone, left, right] = peers as [PeerProcess, PeerProcess, PeerProcess];
    await createOn(alone, 'island');
    await createOn(left, 'mainland');
    for (const peer of peers) await eventually(async () => (await peer.api('GET', '/v1/sprites')).body.sprites.length === 2, 10_000, 'both records everywhere');
    const before = { island: await checkpoint(alone, 'island', 'before'), mainland: await checkpoint(left, 'mainland', 'before') };

    await partition.split(lone, pair);
    await eventually(async () => (await memberStates(right))[ids[0]!] === 'down', 30_000, 'the lone peer down on the other side');
    await eventually(async () => (await memberStates(alone))[ids[1]!] === 'down', 30_000, 'the other side down for the lone peer');

    // Each side serves its own sprites, and checkpoints them.
    const island = await exec(alone, 'island', 'echo kept > /side && sync && cat /side');
    assert.equal(island.stdout, 'kept\n', island.stderr);
    const mainland = await exec(right, 'mainland', 'echo kept > /side && sync && cat /side');
    assert.equal(mainland.stdout, 'kept\n', mainland.stderr);
    const during = { island: await checkpoint(alone, 'island', 'during'), mainland: await checkpoint(right, 'mainland', 'during') };
    // The other side cannot take a sprite whose owner still holds its disk's lease: a clear 503, no second owner.
    const refused = await right.api('POST', '/v1/sprites/island/start');
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'ERR_SPRITE_UNRECOVERABLE');

    await partition.heal();
    for (const peer of peers) await eventually(async () => Object.values(await memberStates(peer)).filter((s) => s === 'alive').length === 3, 60_000, 'the mesh whole again');
    for (const peer of peers) {
      const records = await eventually(async () => {
        const { body } = await peer.api('GET', '/v1/sprites');
        const byName = Object.fromEntries((body.sprites as { name: string; owner: string }[]).map((s) => [s.name, s.owner]));
        return byName.island === ids[0] && byName.mainland === ids[1] ? byName : undefined;
      }, 20_000, 'one owner per sprite on every peer');
      assert.equal(Object.keys(records).length, 2);
      for (const name of ['island', 'mainland'] as const) {
        const listed = (await peer.api('GET', `/v1/sprites/${name}/checkpoints`)).body as { id: string }[];
        assert.deepEqual(listed.map((c) => c.id).filter((id) => id === before[name] || id === during[name]), [before[name], during[name]]);
      }
    }
    assert.equal((await exec(right, 'island', 'cat /side')).stdout, 'kept\n');
    assert.equal((await exec(alone, 'mainland', 'cat /side')).stdout, 'kept\n');
    for (const name of ['island', 'mainland']) assert.equal((await right.api('DELETE', `/v1/sprites/${name}`)).status, 204);
  });
});
