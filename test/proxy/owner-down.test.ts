import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { request } from './helpers.ts';

// Short membership timeouts so the failure detector calls the killed peer down in seconds.
const MEMBERSHIP = ['--suspect-after-ms', '1000', '--down-after-ms', '3000'];

describe('a sprite whose owner peer dies', () => {
  let edge: PeerProcess;
  let owner: PeerProcess;
  let killed = false;
  let port = 0;
  let ca = '';
  let ownerId = '';

  before(async () => {
    edge = await startPeer({ poolDepth: 0, args: MEMBERSHIP });
    owner = await startPeer({ poolDepth: 0, join: edge, args: MEMBERSHIP });
    const created = await owner.api('POST', '/v1/sprites', { name: 'orphan' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    ownerId = created.body.owner;
    const url = await eventually(async () => {
      const result = await edge.cli(['url', 'orphan']);
      return result.code === 0 ? result.stdout.trim() : undefined;
    }, 20_000, 'the sprite on the edge peer');
    port = Number(new URL(url).port);
    ca = (await edge.cli(['peer', 'ca'])).stdout;
  });
  after(async () => {
    await edge?.stop();
    if (owner && killed) {
      // The next start on the killed peer's data dir cleans up what SIGKILL left (sandboxes, disks).
      const again = await startPeer({ dataDir: owner.dataDir, poolDepth: 0 });
      await again.stop();
    } else {
      await owner?.stop();
    }
    if (edge) await removeDataDir(edge.dataDir);
    if (owner) await removeDataDir(owner.dataDir);
  });

  const get = () => request(port, 'orphan.sprites.localhost', '/', { tls: { ca }, headers: { authorization: `Bearer ${edge.token}` } });

  test('once the edge peer holds the owner down and cannot restore its disk, its proxy answers 503 with the reason at once', async () => {
    // Alive owner: the edge forwards, and the owner answers for the sprite (nothing listens on its :8080).
    const reached = await eventually(async () => {
      const answer = await get();
      return answer.headers['x-sprite-error'] === 'ERR_PROXY_UPSTREAM' ? answer : undefined;
    }, 20_000, 'the owner to answer through the edge');
    assert.equal(reached.status, 502);

    await owner.kill();
    killed = true;
    // Before the failure detector decides, the dead owner's proxy refuses the connection: also 503.
    const refused = await get();
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['x-sprite-error'], 'ERR_PROXY_OWNER_DOWN');

    await eventually(async () => {
      const { body } = await edge.api('GET', '/v1/peers');
      return body.peers.find((p: { id: string }) => p.id === ownerId)?.state === 'down' || undefined;
    }, 30_000, 'the edge peer to hold the owner down');
    const down = await get();
    assert.equal(down.status, 503);
    assert.equal(down.headers['x-sprite-error'], 'ERR_PROXY_OWNER_DOWN');
    assert.ok(Number(down.headers['retry-after']) > 0);
    // The edge tries to take the sprite over, and cannot: the owner's disk is in the owner's own store.
    const body = JSON.parse(down.body) as { error: string; message: string };
    assert.match(body.message, new RegExp(`sprite orphan's peer ${ownerId} is down and its disk is in file://\\S+, not in this peer's store`));
  });
});
