import assert from 'node:assert/strict';
import { rename, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { HEAD } from '../../../vm/storage/device/meta-db.ts';
import { objectKey } from '../../../vm/storage/device/objects.ts';
import { hasCode } from '../../../vm/storage/errors.ts';
import { collectGarbage } from '../../../vm/storage/gc.ts';
import { memoryLogger, silentLogger } from '../../../vm/logger.ts';
import { openObjectStore } from '../../../vm/storage/store/open.ts';
import { listAll } from '../../../vm/storage/store/store.ts';
import { interceptStore, openEngine, removeTemp, seededBytes, startBackend, tempDir, type StoreBackend } from './helpers.ts';

const UNIT = 64 * 1024;
const SIZE = 16 * 1024 * 1024;

let backend: StoreBackend;
const dirs: string[] = [];
const dir = async () => {
  const path = await tempDir('durable');
  dirs.push(path);
  return path;
};
before(async () => { backend = await startBackend('file'); });
after(async () => {
  for (const path of dirs) await removeTemp(path);
  await backend.stop();
});
const storeDir = () => backend.url.slice('file://'.length);

test('a corrupt or missing object fails the read with a log line naming it, and a retry succeeds once repaired', async () => {
  const writer = await openEngine(backend.url, await dir());
  const device = await writer.device((await writer.create('faulty', { size: SIZE })).id);
  const data = seededBytes('faulty', UNIT);
  await device.write(3 * UNIT, data);
  await device.fsync();
  const object = writer.db.map('faulty', HEAD).get(3)!;
  await writer.close();

  const logger = memoryLogger();
  const reader = await openEngine(backend.url, await dir(), { logger });
  try {
    const view = await reader.device('faulty');
    const path = join(storeDir(), objectKey(object));
    const good = await readFile(path);
    const out = Buffer.alloc(UNIT);
    const corrupt = Buffer.from(good);
    corrupt[100] = corrupt[100]! ^ 0xff;
    await writeFile(path, corrupt);
    await assert.rejects(view.read(3 * UNIT, out), (error) => hasCode(error, 'ERR_OBJECT_CORRUPT'));
    await writeFile(path, good.subarray(0, 1000));
    await assert.rejects(view.read(3 * UNIT, out), (error) => hasCode(error, 'ERR_OBJECT_CORRUPT'));
    await rename(path, `${path}.away`);
    await assert.rejects(view.read(3 * UNIT, out), (error) => hasCode(error, 'ERR_OBJECT_NOT_FOUND'));
    const lines = logger.lines.filter((line) => line.message === 'object read failed');
    assert.equal(lines.length, 3);
    assert.ok(lines.every((line) => line.key === objectKey(object) && line.level === 'error'), 'each failure names the object key');
    assert.deepEqual(lines.map((line) => line.code), ['ERR_OBJECT_CORRUPT', 'ERR_OBJECT_CORRUPT', 'ERR_OBJECT_NOT_FOUND']);
    await rename(`${path}.away`, path);
    await writeFile(path, good);
    await view.read(3 * UNIT, out);
    assert.ok(out.equals(data), 'the retry reads the right bytes');
  } finally {
    await reader.close();
  }
});

test('a stale writer is fenced after a forced takeover and its later writes never reach a restore', async () => {
  const old = await openEngine(backend.url, await dir(), { leaseCheckMs: 0 });
  const device = await old.device((await old.create('fenced', { size: SIZE })).id);
  await device.write(0, seededBytes('before', UNIT));
  await device.fsync();
  const taker = await openEngine(backend.url, await dir());
  try {
    await assert.rejects(taker.open('fenced'), (error) => hasCode(error, 'ERR_LEASE_HELD'));
    await taker.open('fenced', { force: true });
    await device.write(UNIT, seededBytes('stale', UNIT));
    await assert.rejects(device.fsync(), (error) => hasCode(error, 'ERR_LEASE_LOST'));
    await assert.rejects(device.write(2 * UNIT, seededBytes('later', UNIT)), (error) => hasCode(error, 'ERR_LEASE_LOST'));
    const fresh = await taker.device('fenced');
    const out = Buffer.alloc(2 * UNIT);
    await fresh.read(0, out);
    assert.ok(out.subarray(0, UNIT).equals(seededBytes('before', UNIT)));
    assert.ok(out.subarray(UNIT).equals(Buffer.alloc(UNIT)), 'the stale write is not there');
    await fresh.write(UNIT, seededBytes('new owner', UNIT));
    await fresh.fsync();
  } finally {
    await old.close({ flush: false });
    await taker.close();
  }
  const third = await openEngine(backend.url, await dir());
  try {
    const out = Buffer.alloc(UNIT);
    await (await third.device('fenced')).read(UNIT, out);
    assert.ok(out.equals(seededBytes('new owner', UNIT)));
  } finally {
    await third.close();
  }
});

test('GC deletes unreferenced old objects but never live ones, including those written while it runs', async () => {
  const engine = await openEngine(backend.url, await dir());
  try {
    const device = await engine.device((await engine.create('gc', { size: SIZE })).id);
    for (let unit = 0; unit < 16; unit++) await device.write(unit * UNIT, seededBytes(`gen1:${unit}`, UNIT));
    await device.fsync();
    await engine.checkpoint('gc', 'keep');
    for (let unit = 0; unit < 8; unit++) await device.write(unit * UNIT, seededBytes(`gen2:${unit}`, UNIT));
    await device.fsync();
    for (let unit = 0; unit < 8; unit++) await device.write(unit * UNIT, seededBytes(`gen3:${unit}`, UNIT));
    await device.fsync();
    // 8 objects of gen2 are referenced by nothing; gen1 lives in v0, gen3 in the head.
    const store = await openObjectStore(backend.url);
    // The pass below runs "later", with a grace period that still covers everything from the
    // moment the writer starts: what the writer uploads before committing is exactly what the
    // grace period protects in production. Stores that keep modification times in whole seconds
    // need the 2 s margin, so gen2 is made older than that first.
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const writerStart = Date.now();
    const later = writerStart + 10_000_000;
    const coversWriter = later - writerStart + 2000;
    // A concurrent writer keeps writing and committing during the pass.
    let writing = true;
    const writer = (async () => {
      for (let round = 0; writing || round < 3; round++) {
        await device.write((8 + (round % 8)) * UNIT, seededBytes(`during:${round}`, UNIT));
        await device.fsync();
      }
    })();
    const grace = await collectGarbage({ store, logger: silentLogger(), graceMs: 3_600_000 });
    assert.equal(grace.deleted, 0, 'nothing is older than the grace period');
    const result = await collectGarbage({ store, logger: silentLogger(), graceMs: coversWriter, now: later });
    writing = false;
    await writer;
    assert.ok(result.deleted >= 8, `unreferenced gen2 objects went (${result.deleted})`);
    // Every unit of head and checkpoint must still read from the store alone.
    const fresh = await openEngine(backend.url, await dir());
    try {
      await engine.closeDevice('gc');
      await engine.release('gc');
      const view = await fresh.device('gc');
      const out = Buffer.alloc(UNIT);
      for (let unit = 0; unit < 8; unit++) {
        await view.read(unit * UNIT, out);
        assert.ok(out.equals(seededBytes(`gen3:${unit}`, UNIT)), `head unit ${unit}`);
      }
      for (let unit = 8; unit < 16; unit++) await view.read(unit * UNIT, out);
      const v0 = await fresh.view('gc', 0);
      for (let unit = 0; unit < 16; unit++) {
        await v0.read(unit * UNIT, out);
        assert.ok(out.equals(seededBytes(`gen1:${unit}`, UNIT)), `checkpoint unit ${unit}`);
      }
    } finally {
      await fresh.close();
    }
    const after = await collectGarbage({ store, logger: silentLogger(), graceMs: 1000, now: later });
    assert.equal((await listAll(store, 'objects/')).length, after.live, 'what remains is exactly the live set');
    await store.close();
  } finally {
    await engine.close();
  }
});

test('relaxed mode acknowledges fsync locally and a restart on the same data dir keeps the data', async () => {
  const path = await dir();
  const engine = await openEngine(backend.url, path, { device: { mode: 'relaxed', settleMs: 60_000, maxDirtyMs: 60_000 } });
  const device = await engine.device((await engine.create('relaxed', { size: SIZE })).id);
  await device.write(0, seededBytes('relaxed', 4 * UNIT));
  await device.fsync();
  assert.equal(device.stats().uploaded, 0, 'relaxed fsync uploads nothing');
  // A crash: nothing flushed, the lease left as it was.
  await engine.close({ flush: false });
  const again = await openEngine(backend.url, path, { device: { mode: 'relaxed' } });
  try {
    const view = await again.device('relaxed');
    const out = Buffer.alloc(4 * UNIT);
    await view.read(0, out);
    assert.ok(out.equals(seededBytes('relaxed', 4 * UNIT)));
    await view.flush();
    assert.equal(again.db.map('relaxed', HEAD).size, 4, 'adopted units were uploaded');
  } finally {
    await again.close();
  }
});

test('an unreachable store fails fsync with an error after the flush timeout, not a hang', async () => {
  const store = await openObjectStore(backend.url);
  // While down, write-back's first three uploads fail at once (the back-off grows past the
  // flush timeout) and the fourth hangs until `release`, so it is still in flight when the
  // store comes back: its late failure must not hold back the next fsync.
  let down = false;
  let calls = 0;
  let release = () => {};
  const hung = new Promise<void>((resolve) => { release = resolve; });
  const refuse = async (): Promise<never> => {
    if (++calls > 3) await hung;
    throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ERR_STORE_UNAVAILABLE' });
  };
  const flaky = interceptStore(store, {
    put: (put, ...args) => (down ? refuse() : put(...args)),
    putFile: (putFile, ...args) => (down ? refuse() : putFile(...args)),
  });
  const engine = await openEngine(backend.url, await dir(), { store: flaky, device: { flushTimeoutMs: 300 } });
  try {
    const device = await engine.device((await engine.create('down', { size: SIZE })).id);
    down = true;
    await device.write(0, seededBytes('down', UNIT));
    for (const deadline = Date.now() + 10_000; calls < 4;) {
      assert.ok(Date.now() < deadline, `write-back retries the upload (${calls} attempts so far)`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await assert.rejects(device.fsync(), (error) => hasCode(error, 'ERR_STORE_UNAVAILABLE'));
    down = false;
    const synced = device.fsync();
    release();
    await synced;
    assert.equal(engine.db.map('down', HEAD).size, 1, 'the write reaches the store once it is back');
  } finally {
    release();
    await engine.close();
  }
});
