import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { StorageDaemon } from '../../../vm/storage/daemon/client.ts';
import { ObjectVolumeStore, type ObjectVolume } from '../../../vm/storage/volume.ts';
import { removeTemp, startBackend, tempDir, type StoreBackend } from './helpers.ts';

let backend: StoreBackend;
let root: string;
const daemons: StorageDaemon[] = [];

before(async () => {
  backend = await startBackend('file');
  root = await tempDir('loops');
});

after(async () => {
  for (const daemon of daemons) await daemon.stop(30_000).catch(() => daemon.kill());
  await removeTemp(root);
  await backend.stop();
});

/**
 * Regression: an unmount used to run `losetup -d` on its loop device after the kernel had already
 * auto-cleared it, so when another daemon (or another volume) had just been given that free
 * device, its loop device vanished and its mount failed with "can't read superblock".
 * Three daemons on one machine restore, mount and unmount in a loop at the same time.
 */
test('three daemons restoring, mounting and unmounting at once never lose each other\'s loop devices', { timeout: 600_000 }, async () => {
  const rounds = 25;
  const run = async (peer: string): Promise<void> => {
    const daemon = await StorageDaemon.start({ dataDir: join(root, peer), objectStore: backend.url });
    daemons.push(daemon);
    const volumes = new ObjectVolumeStore(daemon);
    const volume: ObjectVolume = await volumes.createEmpty(`${peer}-disk`, 256 * 1024 * 1024, { format: true });
    const mnt = join(root, `${peer}-mnt`);
    await volume.mount(mnt);
    await writeFile(join(mnt, 'marker'), 'v0');
    const v0 = await volume.checkpoint('marker v0');
    await writeFile(join(mnt, 'marker'), 'later');
    await volume.unmount();
    for (let i = 0; i < rounds; i++) {
      await volume.restore(v0.id);
      await volume.mount(mnt);
      assert.equal(await readFile(join(mnt, 'marker'), 'utf8'), 'v0', `${peer} round ${i}`);
      await writeFile(join(mnt, 'marker'), `round ${i}`);
      await volume.unmount();
    }
    await daemon.stop();
  };
  await Promise.all([run('peer-a'), run('peer-b'), run('peer-c')]);
});
