import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { IpcChild, removeTemp, sh, tempDir } from './helpers.ts';

const FIXTURE = new URL('./fixtures/fuse-memory.ts', import.meta.url).pathname;
const GiB = 1024 ** 3;

let root: string;
let server: IpcChild;
let mountpoint: string;

before(async () => {
  root = await tempDir('fuse-test');
  mountpoint = join(root, 'fuse');
  server = new IpcChild(FIXTURE, [mountpoint]);
  await server.ready;
});

after(async () => {
  await server.call('stop').catch(() => undefined);
  await server.kill();
  await removeTemp(root);
});

test('a served file works as a direct-I/O loop device under ext4, with fsync and discard reaching the server', async () => {
  const file = await server.call<string>('add', { name: 'disk', size: 4 * GiB });
  const loop = (await sh('losetup', ['--direct-io=on', '--find', '--show', file])).trim();
  const target = join(root, 'ext4');
  await mkdir(target);
  try {
    assert.equal((await sh('cat', [`/sys/block/${loop.slice(5)}/loop/dio`])).trim(), '1', 'loop uses direct I/O');
    await sh('mkfs.ext4', ['-q', '-E', 'lazy_itable_init=1,lazy_journal_init=1,discard', loop]);
    const afterMkfs = await server.call<{ allocated: number }>('stats', { name: 'disk' });
    assert.ok(afterMkfs.allocated < 64 * 1024 * 1024, `lazy init writes little (${afterMkfs.allocated} bytes)`);
    await sh('mount', ['-o', 'discard', loop, target]);
    // Several writers at once: the server must interleave their requests.
    await Promise.all([0, 1, 2, 3].map((i) => sh('dd', ['if=/dev/urandom', `of=${target}/f${i}`, 'bs=1M', 'count=24', 'status=none'])));
    await sh('sync', []);
    const sums = await sh('sha256sum', ['f0', 'f1', 'f2', 'f3'].map((f) => join(target, f)));
    // Remount so the reads come from the device, not ext4's page cache.
    await sh('umount', [target]);
    await sh('mount', ['-o', 'discard', loop, target]);
    assert.equal(await sh('sha256sum', ['f0', 'f1', 'f2', 'f3'].map((f) => join(target, f))), sums);
    const written = await server.call<{ allocated: number; fsyncs: number; byOpcode: Record<number, number> }>('stats', { name: 'disk' });
    assert.ok(written.fsyncs > 0, 'ext4 flushes reach FSYNC');
    assert.ok(written.byOpcode[16]! > 0 && written.byOpcode[15]! > 0, 'reads and writes arrived');
    await sh('rm', [join(target, 'f0'), join(target, 'f1'), join(target, 'f2'), join(target, 'f3')]);
    await sh('sync', []);
    await sh('fstrim', [target]).catch(() => undefined);
    const trimmed = await server.call<{ allocated: number; discards: number }>('stats', { name: 'disk' });
    assert.ok(trimmed.discards > 0, 'discard reaches FALLOCATE');
    assert.ok(trimmed.allocated < written.allocated - 64 * 1024 * 1024, `punched ranges are freed (${written.allocated} -> ${trimmed.allocated})`);
    const statfs = await sh('stat', ['-f', '-c', '%S %b', mountpoint]);
    assert.equal(statfs.trim(), `4096 ${(4 * GiB) / 4096}`);
  } finally {
    await sh('umount', [target]).catch(() => undefined);
    await sh('losetup', ['-d', loop]).catch(() => undefined);
  }
  // Once the loop device lets go (its RELEASE comes asynchronously, late on a loaded machine),
  // the file can be removed.
  for (let i = 0; ; i++) {
    try {
      await server.call('remove', { name: 'disk' });
      break;
    } catch (error) {
      if (i >= 1500 || !/still open/.test(String(error))) throw error;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  assert.equal((await server.call<{ inflight: number }>('stats')).inflight, 0, 'every request was answered');
});

test('an internal error becomes EIO and the session keeps serving', async () => {
  const file = await server.call<string>('add', { name: 'bad', size: 64 * 1024 * 1024 });
  await sh('dd', ['if=/dev/urandom', `of=${file}`, 'bs=1M', 'count=4', 'conv=notrunc', 'status=none']);
  await server.call('fail', { name: 'bad', at: 2 * 1024 * 1024 });
  await assert.rejects(sh('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'count=4', 'status=none']), /Input\/output error/);
  await sh('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'count=2', 'status=none']);
  const stats = await server.call<{ inflight: number; errors: number }>('stats', { name: 'bad' });
  assert.equal(stats.inflight, 0);
  assert.ok(stats.errors >= 1);
  assert.equal((await sh('ls', [mountpoint])).trim(), 'bad');
  await server.call('remove', { name: 'bad' });
});
