import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { StreamMessage } from '@fly/sprites';
import { collect, twoPeers, type TwoPeers } from './helpers.ts';

/** The id a finished checkpoint stream names (its last `info` line). */
function createdId(messages: StreamMessage[]): string {
  assert.ok(messages.every((m) => m.type === 'info'), JSON.stringify(messages));
  const id = /^Checkpoint (v\d+) created$/.exec(messages.at(-1)?.data ?? '')?.[1];
  assert.ok(id, JSON.stringify(messages));
  assert.equal((messages.at(-1) as StreamMessage & { id?: string }).id, id);
  return id;
}

describe('checkpoints through the SDK, on two peers', () => {
  let mesh: TwoPeers;
  const ids: string[] = [];
  const marker = async (): Promise<string> => {
    const read = await mesh.owner.cli(['exec', 'cp', '--', 'cat', '/root/marker']);
    assert.equal(read.code, 0, read.stderr);
    return read.stdout;
  };
  const mark = async (text: string): Promise<void> => {
    const wrote = await mesh.other.cli(['exec', 'cp', '--', 'sh', '-c', `echo ${text} > /root/marker && sync`]);
    assert.equal(wrote.code, 0, wrote.stderr);
  };
  before(async () => {
    mesh = await twoPeers('cp');
  });
  after(() => mesh?.stop());

  test('createCheckpoint streams its progress and names the checkpoint, through the peer that does not own the sprite', async () => {
    await mark('one');
    const messages = await collect(await mesh.viaOther.createCheckpoint('first'));
    assert.equal(messages[0]!.data, 'Creating checkpoint...');
    ids.push(createdId(messages));
  });

  test('listCheckpoints maps every field; getCheckpoint shows one with its source and history', async () => {
    const listed = await mesh.viaOther.listCheckpoints();
    const first = listed.find((c) => c.id === ids[0]);
    assert.ok(first, JSON.stringify(listed));
    assert.equal(first.comment, 'first');
    assert.equal(first.isAuto, false);
    assert.ok(!Number.isNaN(first.createTime.getTime()) && first.createTime.getTime() <= Date.now());
    assert.deepEqual(first.history, []);

    await mark('two');
    ids.push(createdId(await collect(await mesh.viaOwner.createCheckpoint('second'))));
    const second = await mesh.viaOther.getCheckpoint(ids[1]!);
    assert.deepEqual({ id: second.id, comment: second.comment, sourceId: second.sourceId, history: second.history }, { id: ids[1], comment: 'second', sourceId: ids[0], history: [ids[0]] });
    await assert.rejects(mesh.viaOther.getCheckpoint('v999'), /Checkpoint not found: v999/);
  });

  test('restoreCheckpoint streams the restore; the disk is back and later checkpoints descend from it', async () => {
    const messages = await collect(await mesh.viaOther.restoreCheckpoint(ids[0]!));
    assert.ok(messages.every((m) => m.type === 'info'), JSON.stringify(messages));
    assert.deepEqual(messages.map((m) => m.data).slice(0, 3), ['Stopping sprite...', `Restoring disk to ${ids[0]}...`, 'Starting sprite...']);
    assert.match(messages.at(-1)!.data!, /the sprite is running$/);
    assert.equal(await marker(), 'one\n');

    ids.push(createdId(await collect(await mesh.viaOther.createCheckpoint('third'))));
    const third = await mesh.viaOwner.getCheckpoint(ids[2]!);
    assert.equal(third.sourceId, ids[0]);
    // The history filter: a checkpoint and the ones it descends from.
    assert.deepEqual((await mesh.viaOther.listCheckpoints(ids[2]!)).map((c) => c.id), [ids[0], ids[2]]);
    assert.deepEqual((await mesh.viaOther.listCheckpoints(ids[1]!)).map((c) => c.id), [ids[0], ids[1]]);
    assert.deepEqual(await mesh.viaOther.listCheckpoints('v999'), []);
    await assert.rejects(mesh.viaOther.restoreCheckpoint('v999'), /status 404.*ERR_CHECKPOINT_NOT_FOUND/);
  });

  test('delete and the CLI use the same routes', async () => {
    const deleted = await mesh.other.api('DELETE', `/v1/sprites/cp/checkpoints/${ids[1]}`);
    assert.equal(deleted.status, 204);
    assert.deepEqual((await mesh.viaOther.listCheckpoints()).map((c) => c.id), [ids[0], ids[2]]);
    const created = await mesh.other.cli(['checkpoint', 'create', 'cp', '-m', 'from the cli']);
    assert.equal(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    assert.match(id, /^v\d+$/);
    const listed = await mesh.other.cli(['checkpoint', 'list', 'cp']);
    assert.match(listed.stdout, new RegExp(`^${id} +\\S+ +${ids[2]} +from the cli$`, 'm'));
    const restored = await mesh.other.cli(['restore', 'cp', id]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stderr, /Restored to v\d+; the sprite is running/);
  });
});
