import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

describe('checkpoints and restore of a sprite disk', () => {
  let peer: PeerProcess;
  const run = (script: string) => peer.cli(['exec', 'keep', '--', 'sh', '-c', script]);
  before(async () => {
    peer = await startPeer({ poolDepth: 0 });
    assert.equal((await peer.api('POST', '/v1/sprites', { name: 'keep' })).status, 201);
  });
  after(async () => {
    await peer?.stop();
    if (peer) await removeDataDir(peer.dataDir);
  });

  test('write, checkpoint, overwrite, restore: the checkpointed bytes come back', async () => {
    assert.equal((await run('head -c 3000000 /dev/urandom > /root/data; sha256sum /root/data > /root/sum; sync')).code, 0);
    const sum = (await run('cat /root/sum')).stdout;
    const created = await peer.cli(['checkpoint', 'create', 'keep', '-m', 'before the mess', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const checkpoint = JSON.parse(created.stdout) as { id: string; comment: string };
    assert.match(checkpoint.id, /^v\d+$/);
    assert.equal(checkpoint.comment, 'before the mess');
    // The sprite kept running through the checkpoint.
    assert.equal((await run('echo still here')).stdout, 'still here\n');
    assert.equal((await run('head -c 1000 /dev/zero > /root/data; rm /root/sum; echo new > /root/after')).code, 0);

    const listed = await peer.cli(['checkpoint', 'list', 'keep']);
    assert.match(listed.stdout, new RegExp(`${checkpoint.id}\\s+.*before the mess`));
    const restored = await peer.cli(['restore', 'keep', checkpoint.id]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal((await peer.api('GET', '/v1/sprites/keep')).body.state, 'running');
    assert.equal((await run('sha256sum /root/data')).stdout, sum);
    assert.notEqual((await run('test -e /root/after; echo $?')).stdout, '0\n');
  });

  test('unknown checkpoints are 404; deleted checkpoints disappear', async () => {
    const missing = await peer.api('POST', '/v1/sprites/keep/checkpoints/v999/restore');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'ERR_CHECKPOINT_NOT_FOUND');
    const made = await peer.api('POST', '/v1/sprites/keep/checkpoints', {});
    assert.equal(made.status, 201);
    assert.equal((await peer.api('GET', `/v1/sprites/keep/checkpoints/${made.body.id}`)).status, 200);
    assert.equal((await peer.cli(['checkpoint', 'delete', 'keep', made.body.id])).code, 0);
    assert.equal((await peer.api('GET', `/v1/sprites/keep/checkpoints/${made.body.id}`)).status, 404);
    const info = await peer.cli(['checkpoint', 'info', 'keep', made.body.id]);
    assert.equal(info.code, 1);
    assert.match(info.stderr, /no checkpoint/);
  });
});
