import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openEngine, removeTemp, seededBytes, startBackend, tempDir, type StoreBackend } from './helpers.ts';

const UNIT = 64 * 1024;

let backend: StoreBackend;
let root: string;

before(async () => {
  backend = await startBackend('file');
  root = await tempDir('usage');
});
after(async () => {
  await backend?.stop();
  if (root) await removeTemp(root);
});

test("a volume's usage: its checkpoints, and the whole units only its versions reference (its origin's not counted)", async () => {
  const engine = await openEngine(backend.url, root);
  try {
    await engine.create('base', { size: 64 * UNIT });
    const base = await engine.device('base');
    await base.write(0, seededBytes('base', 4 * UNIT));
    await base.fsync();
    await engine.checkpoint('base');
    assert.deepEqual(await engine.usage('base'), { checkpoints: 1, bytes: 4 * UNIT });

    // A clone of base@v0 holds nothing of its own until it writes.
    await engine.clone('child', 'base', 0);
    assert.deepEqual(await engine.usage('child'), { checkpoints: 0, bytes: 0 });
    const child = await engine.device('child');
    // One unit over a base unit, one new: two units of its own.
    await child.write(0, seededBytes('over', UNIT));
    await child.write(10 * UNIT, seededBytes('new', UNIT));
    await child.fsync();
    assert.deepEqual(await engine.usage('child'), { checkpoints: 0, bytes: 2 * UNIT });
    // A checkpoint shares the head's objects; a later overwrite adds one more, still referenced by the checkpoint.
    await engine.checkpoint('child');
    await child.write(10 * UNIT, seededBytes('again', UNIT));
    await child.fsync();
    assert.deepEqual(await engine.usage('child'), { checkpoints: 1, bytes: 3 * UNIT });
    // Dropping the checkpoint lets the old object go from the count.
    await engine.deleteCheckpoint('child', 0);
    assert.deepEqual(await engine.usage('child'), { checkpoints: 0, bytes: 2 * UNIT });
  } finally {
    await engine.close();
  }
});
