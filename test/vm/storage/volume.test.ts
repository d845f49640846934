import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { StorageDaemon } from '../../../vm/storage/daemon/client.ts';
import { hasCode } from '../../../vm/storage/errors.ts';
import { ObjectVolumeStore } from '../../../vm/storage/volume.ts';
import { VOLUMES_DEFAULTS } from '../../../vm/storage/defaults.ts';
import { removeTemp, sh, startBackend, tempDir, type StoreBackend } from './helpers.ts';
import { verifyTree, writeTree } from './writer.ts';

const GiB = 1024 ** 3;

/** fio writing 4 KiB random blocks with crc32c headers (several jobs at once), then verifying them. */
function fio(target: string, options: { verifyOnly?: boolean; jobs?: number } = {}): Promise<string> {
  return sh('fio', [
    '--name=verify', `--directory=${target}`, '--size=16M', `--numjobs=${options.jobs ?? 2}`, '--rw=randwrite', '--bs=4k', '--direct=1',
    '--ioengine=libaio', '--iodepth=16', '--verify=crc32c', '--verify_fatal=1', '--randrepeat=1', '--group_reporting', '--verify_state_save=0',
    ...(options.verifyOnly ? ['--verify_only'] : ['--do_verify=1', '--fsync_on_close=1']),
  ], { timeoutMs: 120_000 });
}

/** Units (of `unitSize` bytes) of the volume that lie entirely inside the data extents of `file`. */
async function unitsOnlyOf(file: string, unitSize: number): Promise<number[]> {
  const out = await sh('filefrag', ['-e', '-b4096', file]);
  const units: number[] = [];
  for (const line of out.split('\n')) {
    const match = /^\s*\d+:\s*\d+\.\.\s*\d+:\s*(\d+)\.\.\s*(\d+):/.exec(line);
    if (!match) continue;
    const start = Number(match[1]) * 4096;
    const end = (Number(match[2]) + 1) * 4096;
    for (let unit = Math.ceil(start / unitSize); (unit + 1) * unitSize <= end; unit++) units.push(unit);
  }
  return units;
}

for (const name of ['file', 's3'] as const) {
  describe(`volumes through the daemon on ${name}`, { concurrency: false }, () => {
    let backend: StoreBackend;
    let root: string;
    const daemons: StorageDaemon[] = [];
    /** Runs a test body; on failure, the tails of every daemon log go into the error message. */
    const withLogs = (body: () => Promise<void>) => async () => {
      try {
        await body();
      } catch (error) {
        const tails = await Promise.all(daemons.map(async (daemon) => `--- ${daemon.logFile}\n${(await readFile(daemon.logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-8).join('\n')}`));
        (error as Error).message += `\n${tails.join('\n')}`;
        throw error;
      }
    };
    const startDaemon = async (dataDir: string, options: Record<string, unknown> = {}) => {
      const daemon = await StorageDaemon.start({ dataDir: join(root, dataDir), objectStore: backend.url, ...options });
      daemons.push(daemon);
      return daemon;
    };
    before(async () => {
      backend = await startBackend(name);
      root = await tempDir(`volume-${name}`);
    });
    after(async () => {
      for (const daemon of daemons) await daemon.stop(30_000).catch(() => daemon.kill());
      await removeTemp(root);
      await backend.stop();
    });

    test('write, checkpoint, overwrite, restore and clone keep every byte (fio --verify and the checksummed writer)', withLogs(async () => {
      const daemon = await startDaemon('peer1');
      const volumes = new ObjectVolumeStore(daemon);
      const volume = await volumes.createEmpty('disk', GiB);
      const mnt = join(root, 'mnt1');
      await volume.mount(mnt);
      const first = await writeTree(mnt, 'first', { files: 40, maxBytes: 3 * 1024 * 1024 });
      await fio(mnt);
      const checkpoint = await volume.checkpoint('after first');
      assert.equal(checkpoint.id, 'v0');
      const second = await writeTree(mnt, 'second', { files: 40, maxBytes: 256 * 1024 });
      await verifyTree(mnt, second);
      await volume.unmount();
      await volume.restore('v0');
      await volume.mount(mnt);
      await verifyTree(mnt, first);
      await fio(mnt, { verifyOnly: true });
      const clone = await volume.clone('disk-clone', 'v0');
      const cloneMnt = join(root, 'mnt-clone');
      await clone.mount(cloneMnt);
      await verifyTree(cloneMnt, first);
      await sh('rm', ['-rf', join(cloneMnt, 'd0')]);
      const cloneOnly = await writeTree(cloneMnt, 'clone', { files: 10, maxBytes: 128 * 1024 });
      await clone.unmount();
      await verifyTree(mnt, first);
      await volume.unmount();
      await clone.mount(cloneMnt);
      await verifyTree(cloneMnt, cloneOnly);
      await clone.unmount();
      assert.deepEqual((await volume.checkpoints()).map((c) => c.comment), ['after first']);
      await assert.rejects(volume.restore('v9'), (error) => hasCode(error, 'ERR_CHECKPOINT_NOT_FOUND'));
      await daemon.stop();

      // A peer that never saw the volume restores it from the store alone, through a tiny cache.
      const fresh = await startDaemon('peer2', { cacheBytes: 8 * 1024 * 1024 });
      const restored = new ObjectVolumeStore(fresh).open('disk');
      await restored.mount(join(root, 'mnt2'));
      await verifyTree(join(root, 'mnt2'), first);
      await fio(join(root, 'mnt2'), { verifyOnly: true });
      const stats = await new ObjectVolumeStore(fresh).stats();
      assert.ok(stats.cache.evictions > 0, 'the small cache evicted while reading');
      assert.ok(stats.cache.bytes <= 8 * 1024 * 1024, 'and stayed within its budget');
      await restored.unmount();
      await fresh.stop();
    }));

    if (name === 'file') {
      test('checkpoint views: mounted by the daemon, or attached for a sandbox to mount; no loop device stays', withLogs(async () => {
        const daemon = await startDaemon('views');
        const volume = await new ObjectVolumeStore(daemon).createEmpty('viewed', GiB);
        const loops = async () => (await sh('losetup', ['-n', '-O', 'NAME,BACK-FILE', '-l'])).split('\n').filter((line) => line.includes(root));
        const live = join(root, 'views-live');
        await volume.mount(live);
        await writeFile(join(live, 'note'), 'as checkpointed');
        await volume.checkpoint('first');
        await writeFile(join(live, 'note'), 'changed since');

        const own = join(root, 'views-own');
        await volume.mountCheckpoint('v0', own);
        assert.equal(await readFile(join(own, 'note'), 'utf8'), 'as checkpointed');
        await volume.unmountCheckpoint('v0');
        assert.equal((await loops()).length, 1, 'only the live volume');

        // What a sandbox does: mount the device itself, then the daemon lets the kernel free it.
        const device = await volume.attachCheckpoint('v0');
        await assert.rejects(volume.attachCheckpoint('v0'), (error) => hasCode(error, 'ERR_VOLUME_MOUNTED'));
        const theirs = join(root, 'views-theirs');
        await mkdir(theirs);
        await sh('mount', ['-t', 'ext4', '-o', 'ro,noload', device, theirs]);
        await volume.autoclearCheckpoint('v0');
        assert.equal(await readFile(join(theirs, 'note'), 'utf8'), 'as checkpointed');
        // Still mounted by its consumer: the view stays served, and the call can be repeated.
        await assert.rejects(volume.detachCheckpoint('v0', { waitMs: 200 }), (error) => hasCode(error, 'ERR_MOUNT'));
        assert.equal(await readFile(join(theirs, 'note'), 'utf8'), 'as checkpointed');
        await sh('umount', [theirs]);
        await volume.detachCheckpoint('v0');
        assert.equal((await loops()).length, 1, 'the autocleared device is gone');
        await volume.detachCheckpoint('v0');
        await volume.unmount();
        assert.deepEqual(await loops(), []);
        await daemon.stop();
      }));

      test('kill -9 of the daemon after fsync loses nothing that was fsynced', withLogs(async () => {
        const daemon = await startDaemon('crash1');
        const volume = await new ObjectVolumeStore(daemon).createEmpty('crashy', GiB);
        const mnt = join(root, 'crash-mnt');
        await volume.mount(mnt);
        const synced = await writeTree(mnt, 'synced', { files: 30, maxBytes: 2 * 1024 * 1024 });
        await sh('sync', ['-f', mnt]);
        await daemon.kill();
        // The dead daemon's mounts: the ext4 on its loop device, and the FUSE mount.
        await sh('umount', ['-l', mnt]).catch(() => undefined);
        await sh('umount', ['-l', join(root, 'crash1', 'fuse')]).catch(() => undefined);
        const next = await startDaemon('crash2');
        const again = new ObjectVolumeStore(next).open('crashy');
        await assert.rejects(again.mount(join(root, 'crash-mnt2')), (error) => hasCode(error, 'ERR_LEASE_HELD'));
        await again.mountForce(join(root, 'crash-mnt2'));
        await verifyTree(join(root, 'crash-mnt2'), synced);
        await again.unmount();
        await next.stop();
      }));

      test('a corrupt object makes the read fail with EIO and a log line naming it; the retry succeeds once repaired', withLogs(async () => {
        const daemon = await startDaemon('eio1');
        const volume = await new ObjectVolumeStore(daemon).createEmpty('eio', GiB);
        const mnt = join(root, 'eio-mnt');
        await volume.mount(mnt);
        const tree = await writeTree(mnt, 'eio', { files: 1, maxBytes: 1 });
        // Six units of data: at least four of them hold nothing else.
        const bigMiB = (6 * VOLUMES_DEFAULTS.unitSize) / (1024 * 1024);
        await sh('dd', ['if=/dev/urandom', `of=${join(mnt, 'big')}`, 'bs=1M', `count=${bigMiB}`, 'status=none', 'conv=fsync']);
        const sum = await sh('sha256sum', [join(mnt, 'big')]);
        const units = await unitsOnlyOf(join(mnt, 'big'), VOLUMES_DEFAULTS.unitSize);
        await volume.unmount();
        await daemon.stop();
        // Truncate the objects of units that hold nothing but the file's data.
        const db = new Database(join(root, 'eio1', 'meta.db'), { readonly: true });
        const objects = units.map((unit) => db.prepare('SELECT object FROM map WHERE volume = ? AND version = -1 AND unit = ?').pluck().get('eio', unit) as string);
        db.close();
        assert.ok(objects.length >= 4 && objects.every(Boolean), `found the file's objects (${objects.length})`);
        const storeDir = backend.url.slice('file://'.length);
        const victims = objects.map((object) => join(storeDir, 'objects', object));
        for (const path of victims) await rename(path, `${path}.good`);
        for (const path of victims) await sh('sh', ['-c', `head -c 1000 ${path}.good > ${path}`]);
        const fresh = await startDaemon('eio2');
        const again = new ObjectVolumeStore(fresh).open('eio');
        const mnt2 = join(root, 'eio-mnt2');
        await again.mount(mnt2);
        await verifyTree(mnt2, tree);
        await assert.rejects(sh('sha256sum', [join(mnt2, 'big')]), /Input\/output error/);
        const log = await readFile(fresh.logFile, 'utf8');
        const named = log.split('\n').filter((line) => line.includes('"object read failed"'));
        assert.ok(named.length > 0 && named.every((line) => /"key":"objects\/[0-9a-f]{32}"/.test(line) && line.includes('ERR_OBJECT_CORRUPT')), 'the log names the object');
        for (const path of victims) await rename(`${path}.good`, path);
        assert.equal((await sh('sha256sum', [join(mnt2, 'big')])).split(' ')[0], sum.split(' ')[0], 'the retry reads the right bytes');
        assert.ok((await stat(join(mnt2, 'big'))).size === bigMiB * 1024 * 1024);
        await again.unmount();
        await fresh.stop();
      }));
    }
  });
}
