import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { sweepImageVolumes } from '../../node/images.ts';
import { createLogger } from '../../vm/logger.ts';
import { StorageDaemon } from '../../vm/storage/daemon/client.ts';
import { ObjectVolumeStore } from '../../vm/storage/volume.ts';
import { removeTemp, startBackend, tempDir } from '../vm/storage/helpers.ts';

test('the image sweep removes idle image volumes no image names, and leaves named, recently written, held and other volumes', async () => {
  const store = await startBackend('file');
  const dir = await tempDir('sweep');
  const daemons: StorageDaemon[] = [];
  try {
    const here = await StorageDaemon.start({ dataDir: join(dir, 'here'), objectStore: store.url });
    daemons.push(here);
    const there = await StorageDaemon.start({ dataDir: join(dir, 'there'), objectStore: store.url });
    daemons.push(there);
    const volumes = new ObjectVolumeStore(here);
    const size = 64 * 1024 * 1024;
    for (const id of ['img-orphan-00000001', 'img-named-00000002', 'disk-00000003']) await volumes.createEmpty(id, size, { format: false });
    // Another peer holds this one (an import in progress there, say).
    await new ObjectVolumeStore(there).createEmpty('img-held-00000004', size, { format: false });
    const lines: string[] = [];
    const logger = createLogger({}, (line) => lines.push(line));
    const named = new Set(['img-named-00000002']);

    assert.deepEqual(await sweepImageVolumes(volumes, named, 3600_000, logger), [], 'nothing is idle for an hour yet');
    assert.deepEqual(await sweepImageVolumes(volumes, named, 0, logger), ['img-orphan-00000001']);
    assert.ok(lines.some((line) => line.includes('could not remove') && line.includes('img-held-00000004')), 'the held volume is reported and left');
    assert.deepEqual(await volumes.idleVolumes('img-', 0), ['img-held-00000004', 'img-named-00000002']);
    assert.deepEqual(await volumes.idleVolumes('disk-', 0), ['disk-00000003'], 'other volumes are not image volumes');
  } finally {
    for (const daemon of daemons) await daemon.stop();
    await removeTemp(dir);
    await store.stop();
  }
});
