import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ControlClient } from '../../vm/control.ts';
import { parseSpriteRequest, serveSpriteRequests, TokenBucket, type SpriteRequestHandler } from '../../vm/requests.ts';
import type { CheckpointInfo } from '../../vm/volume.ts';

test('requests from inside a sprite are validated: known ops, bounded comments, no extra fields', () => {
  assert.deepEqual(parseSpriteRequest({ op: 'checkpoints.list' }), { op: 'checkpoints.list' });
  assert.deepEqual(parseSpriteRequest({ op: 'checkpoints.create' }), { op: 'checkpoints.create', comment: '' });
  assert.deepEqual(parseSpriteRequest({ op: 'checkpoints.create', comment: 'é'.repeat(1024) }), { op: 'checkpoints.create', comment: 'é'.repeat(1024) });
  const bad: [unknown, RegExp][] = [
    [{ op: 'checkpoints.create', comment: 'a'.repeat(1025) }, /longer than 1024/],
    [{ op: 'checkpoints.create', comment: 'a\nb' }, /control characters/],
    [{ op: 'checkpoints.create', comment: 7 }, /must be a string/],
    [{ op: 'checkpoints.create', sprite: 'someone-else' }, /unknown field sprite/],
    [{ op: 'checkpoints.restore' }, /unknown op/],
    [{ op: 'checkpoints.list', comment: 'x' }, /no comment/],
    [null, /unknown op/],
    ['checkpoints.list', /unknown op/],
  ];
  for (const [value, message] of bad) {
    assert.throws(() => parseSpriteRequest(value), (error: Error & { code?: string }) => error.code === 'ERR_BAD_REQUEST' && message.test(error.message));
  }
});

test('the token bucket allows a burst, then one per interval', () => {
  let now = 0;
  const bucket = new TokenBucket(3, 1000, () => now);
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false]);
  now = 999;
  assert.equal(bucket.take(), false);
  now = 1000;
  assert.equal(bucket.take(), true);
  now = 100_000;
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false]);
});

test('the peer side serves one request at a time, refuses past its queue and its rate, and hides internal errors', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sprite-requests-'));
  const path = join(dir, 'peer.sock');
  let running = 0;
  let most = 0;
  let release: () => void = () => undefined;
  let gate = new Promise<void>((resolve) => { release = resolve; });
  let made = 0;
  const handler: SpriteRequestHandler = {
    createCheckpoint: async (comment) => {
      running += 1;
      most = Math.max(most, running);
      await gate;
      running -= 1;
      if (comment === 'explode') throw Object.assign(new Error('mount /root/.sprite/storage/fuse/x: EIO'), { code: 'ERR_MOUNT' });
      return { id: `v${made++}`, comment, created: 1 } satisfies CheckpointInfo;
    },
    listCheckpoints: async () => [{ id: 'v0', comment: 'c', created: 1, units: 9 } as CheckpointInfo],
  };
  const hidden: string[] = [];
  const server = await serveSpriteRequests(path, handler, { limits: { burst: 4, refillMs: 3_600_000, maxQueued: 2 }, onError: (_r, error) => hidden.push((error as Error).message) });
  try {
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const client = new ControlClient(path, 'the peer');
    const create = (comment: string) => client.call<{ id: string }>({ op: 'checkpoints.create', comment });
    // Ten at once while the first is held: one runs, two wait, seven are refused at once.
    let refusals = 0;
    let allRefused: () => void = () => undefined;
    const sevenRefused = new Promise<void>((resolve) => { allRefused = resolve; });
    const outcomes = Array.from({ length: 10 }, (_, i) => create(`c${i}`).then(
      (created) => created.id,
      (error: Error & { code?: string }) => {
        if (++refusals === 7) allRefused();
        return `${error.code}: ${error.message}`;
      },
    ));
    await sevenRefused;
    release();
    const results = await Promise.all(outcomes);
    assert.deepEqual(results.filter((r) => r.startsWith('v')).sort(), ['v0', 'v1', 'v2']);
    assert.deepEqual(new Set(results.filter((r) => !r.startsWith('v'))), new Set(['ERR_RATE_LIMITED: too many requests at once; try again shortly']));
    assert.equal(most, 1);
    gate = Promise.resolve();
    // The fourth token goes to a failure whose details stay outside.
    await assert.rejects(create('explode'), { code: 'ERR_INTERNAL', message: /failed on the peer/ });
    assert.deepEqual(hidden, ['mount /root/.sprite/storage/fuse/x: EIO']);
    await assert.rejects(create('e'), { code: 'ERR_RATE_LIMITED', message: /too many checkpoints/ });
    // Listing costs no token, and the answer carries only what the inside may see.
    assert.deepEqual(await client.call({ op: 'checkpoints.list' }), [{ id: 'v0', comment: 'c', created: 1 }]);
    await assert.rejects(client.call({ op: 'checkpoints.list', sprite: 'other' }), { code: 'ERR_BAD_REQUEST' });
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
