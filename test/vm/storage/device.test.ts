import assert from 'node:assert/strict';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { crc32 } from 'node:zlib';
import { decode } from 'cbor-x';
import { crc32Combine, objectIdOfKey, objectKey, verifyObject } from '../../../vm/storage/device/objects.ts';
import { HEAD, type LogRecord } from '../../../vm/storage/device/meta-db.ts';
import { hasCode } from '../../../vm/storage/errors.ts';
import { openObjectStore } from '../../../vm/storage/store/open.ts';
import { listAll } from '../../../vm/storage/store/store.ts';
import { interceptStore, openEngine, removeTemp, seededBytes, startBackend, tempDir, type StoreBackend } from './helpers.ts';

const UNIT = 64 * 1024;
const SIZE = 32 * 1024 * 1024;

/** Random writes, straddling writes and discards applied to the device and to a model buffer. */
async function scribble(device: { write(o: number, d: Buffer): Promise<void>; discard(o: number, l: number): Promise<void> }, model: Buffer, seed: string, count: number): Promise<void> {
  const random = seededBytes(seed, count * 16);
  for (let i = 0; i < count; i++) {
    const r = random.readUInt32LE(i * 16);
    const offset = (r % (SIZE / 512)) * 512;
    const length = Math.min(SIZE - offset, 512 * (1 + (random.readUInt32LE(i * 16 + 4) % 400)));
    if (random[i * 16 + 8]! % 8 === 0) {
      await device.discard(offset, length);
      model.fill(0, offset, offset + length);
    } else {
      const data = seededBytes(`${seed}:${i}`, length);
      await device.write(offset, data);
      data.copy(model, offset);
    }
  }
}

async function readAll(device: { read(o: number, into: Buffer): Promise<void> }): Promise<Buffer> {
  const out = Buffer.alloc(SIZE);
  for (let offset = 0; offset < SIZE; offset += 1024 * 1024) await device.read(offset, out.subarray(offset, offset + 1024 * 1024));
  return out;
}

for (const name of ['file', 's3'] as const) {
  describe(`volume engine on ${name}`, () => {
    let backend: StoreBackend;
    const dirs: string[] = [];
    const dir = async () => {
      const path = await tempDir('engine');
      dirs.push(path);
      return path;
    };
    before(async () => { backend = await startBackend(name); });
    after(async () => {
      for (const path of dirs) await removeTemp(path);
      await backend.stop();
    });

    test('random writes, discards and fsync read back identically, also restored on a fresh data dir', async () => {
      const model = Buffer.alloc(SIZE);
      const first = await openEngine(backend.url, await dir());
      try {
        await first.create('rw', { size: SIZE });
        const device = await first.device('rw');
        await scribble(device, model, 'rw', 300);
        assert.ok((await readAll(device)).equals(model), 'reads see writes before any upload');
        await device.fsync();
        assert.equal(device.stats().dirtyUnits, 0, 'strict fsync leaves nothing dirty');
        assert.ok((await readAll(device)).equals(model), 'and after upload, from the cache');
      } finally {
        await first.close();
      }
      const second = await openEngine(backend.url, await dir(), { cacheBytes: 8 * UNIT });
      try {
        const device = await second.device('rw');
        assert.ok((await readAll(device)).equals(model), 'a fresh data dir with a tiny cache reads the same bytes');
        assert.ok(second.cache.stats().evictions > 0, 'the small cache evicted');
        assert.ok(device.stats().fetched > 0);
      } finally {
        await second.close();
      }
    });

    test('all-zero units have no object and discards free units in the map', async () => {
      const engine = await openEngine(backend.url, await dir());
      try {
        await engine.create('zeros', { size: SIZE });
        const device = await engine.device('zeros');
        await device.write(0, Buffer.alloc(3 * UNIT));
        await device.write(5 * UNIT, seededBytes('a', 2 * UNIT));
        await device.fsync();
        assert.deepEqual([...engine.db.map('zeros', HEAD).keys()].sort(), [5, 6]);
        await device.discard(5 * UNIT, UNIT);
        await device.discard(6 * UNIT + 512, UNIT - 512);
        await device.fsync();
        assert.deepEqual([...engine.db.map('zeros', HEAD).keys()], [6], 'a full discard removes the unit, a partial one keeps it');
        const out = Buffer.alloc(UNIT);
        await device.read(6 * UNIT, out);
        assert.ok(out.subarray(512).equals(Buffer.alloc(UNIT - 512)));
        assert.ok(out.subarray(0, 512).equals(seededBytes('a', 2 * UNIT).subarray(UNIT, UNIT + 512)));
      } finally {
        await engine.close();
      }
    });

    test('concurrent writers and readers on separate ranges stay consistent', async () => {
      const engine = await openEngine(backend.url, await dir(), { device: { uploadConcurrency: 4, softDirtyBytes: 8 * UNIT, hardDirtyBytes: 16 * UNIT } });
      try {
        await engine.create('busy', { size: SIZE });
        const device = await engine.device('busy');
        const lanes = 16;
        const lane = SIZE / lanes;
        await Promise.all(Array.from({ length: lanes }, async (_, i) => {
          for (let round = 0; round < 6; round++) {
            const data = seededBytes(`lane${i}:${round}`, lane / 4);
            const at = i * lane + (round % 4) * (lane / 4);
            await device.write(at, data);
            const back = Buffer.alloc(data.length);
            await device.read(at, back);
            assert.ok(back.equals(data), `lane ${i} round ${round}`);
            if (round % 3 === 2) await device.fsync();
          }
        }));
        assert.ok(device.stats().throttled > 0, 'the small dirty limits applied backpressure');
        await device.fsync();
        for (let i = 0; i < lanes; i++) {
          for (let quarter = 0; quarter < 4; quarter++) {
            const round = quarter + 4 <= 5 ? quarter + 4 : quarter;
            const back = Buffer.alloc(lane / 4);
            await device.read(i * lane + quarter * (lane / 4), back);
            assert.ok(back.equals(seededBytes(`lane${i}:${round}`, lane / 4)), `final lane ${i} quarter ${quarter}`);
          }
        }
      } finally {
        await engine.close();
      }
    });

    test('checkpoint, overwrite, restore and clone are metadata-only and independent', async () => {
      const engine = await openEngine(backend.url, await dir());
      try {
        await engine.create('cp', { size: SIZE });
        let device = await engine.device('cp');
        const v0 = seededBytes('v0', 4 * UNIT);
        await device.write(0, v0);
        const checkpoint = await engine.checkpoint('cp', 'first');
        assert.equal(checkpoint.id, 'v0');
        assert.equal(checkpoint.comment, 'first');
        await device.write(UNIT, seededBytes('v1', UNIT));
        await device.fsync();
        const objectsBefore = (await listAll(engine.store, 'objects/')).length;
        await engine.clone('cp-clone', 'cp', 0);
        assert.equal((await listAll(engine.store, 'objects/')).length, objectsBefore, 'clone writes no data objects');
        await engine.closeDevice('cp');
        await engine.restore('cp', 0);
        device = await engine.device('cp');
        const back = Buffer.alloc(4 * UNIT);
        await device.read(0, back);
        assert.ok(back.equals(v0), 'restore brings v0 back');
        const clone = await engine.device('cp-clone');
        await clone.write(0, seededBytes('clone', UNIT));
        await clone.fsync();
        await device.read(0, back);
        assert.ok(back.equals(v0), 'writing the clone leaves the source alone');
        assert.deepEqual(engine.checkpoints('cp').map((c) => c.id), ['v0']);
        await engine.deleteCheckpoint('cp', 0);
        assert.deepEqual(engine.checkpoints('cp'), []);
        await assert.rejects(engine.restore('cp', 0), (error) => hasCode(error, 'ERR_VOLUME_MOUNTED') || hasCode(error, 'ERR_CHECKPOINT_NOT_FOUND'));
      } finally {
        await engine.close();
      }
    });
  });
}

test('metadata restores from a compacted snapshot plus the log after it', async () => {
  const backend = await startBackend('file');
  const dirs = [await tempDir('engine'), await tempDir('engine')];
  try {
    const model = Buffer.alloc(SIZE);
    const engine = await openEngine(backend.url, dirs[0]!, { snapshotEvery: 5 });
    const device = await engine.device((await engine.create('compact', { size: SIZE })).id);
    for (let i = 0; i < 12; i++) {
      await scribble(device, model, `snap${i}`, 10);
      await device.fsync();
    }
    await engine.checkpoint('compact', 'mid');
    await scribble(device, model, 'tail', 10);
    await device.fsync();
    await engine.close();
    const keys = (await listAll(engine.store, 'volumes/compact/')).map((info) => info.key);
    assert.ok(keys.filter((key) => key.includes('/snap/')).length === 1, `one snapshot remains: ${keys.join(' ')}`);
    assert.ok(keys.filter((key) => key.includes('/log/')).length < 8, 'older log records were compacted');
    const fresh = await openEngine(backend.url, dirs[1]!);
    try {
      assert.ok((await readAll(await fresh.device('compact'))).equals(model));
      assert.deepEqual(fresh.checkpoints('compact').map((c) => c.comment), ['mid']);
    } finally {
      await fresh.close();
    }
  } finally {
    for (const dir of dirs) await removeTemp(dir);
    await backend.stop();
  }
});

test('objects are immutable with unique keys that embed their checksum', async () => {
  const backend = await startBackend('file');
  const dir = await tempDir('engine');
  try {
    const engine = await openEngine(backend.url, dir);
    const device = await engine.device((await engine.create('keys', { size: SIZE })).id);
    await device.write(0, seededBytes('same', UNIT));
    await device.write(UNIT, seededBytes('same', UNIT));
    await device.fsync();
    await device.write(0, seededBytes('other', UNIT));
    await device.fsync();
    const ids = (await listAll(engine.store, 'objects/')).map((info) => objectIdOfKey(info.key));
    assert.equal(new Set(ids).size, 3, 'equal contents get distinct objects and an overwrite adds one');
    assert.equal(new Set(ids.map((id) => id!.slice(24))).size, 2, 'the checksum part matches for equal contents');
    await engine.close();
  } finally {
    await removeTemp(dir);
    await backend.stop();
  }
});

test('a file store takes uploads as hard links, and a unit rewritten during its upload never changes the stored object', async () => {
  const backend = await startBackend('file');
  const dir = await tempDir('engine');
  try {
    const inner = await openObjectStore(backend.url);
    const gate = Promise.withResolvers<void>();
    const entered = Promise.withResolvers<string>();
    // Holds the first linked upload until the unit has been rewritten.
    const store = interceptStore(inner, {
      putFile: async (putFile, key, path) => {
        entered.resolve(key);
        await gate.promise;
        return putFile(key, path);
      },
    });
    const engine = await openEngine(backend.url, dir, { store });
    try {
      const device = await engine.device((await engine.create('sealed', { size: SIZE })).id);
      const first = seededBytes('first', UNIT);
      await device.write(0, first);
      const flushing = device.fsync();
      const key = await entered.promise;
      const patch = seededBytes('patch', UNIT / 2);
      await device.write(UNIT / 4, patch);
      gate.resolve();
      await flushing;
      const stored = await inner.get(key);
      assert.ok(stored.body.equals(first), 'the object holds the bytes of its upload, not the later write');
      verifyObject(objectIdOfKey(key)!, stored.body, UNIT);
      await device.fsync();
      const expected = Buffer.from(first);
      patch.copy(expected, UNIT / 4);
      const out = Buffer.alloc(UNIT);
      await device.read(0, out);
      assert.ok(out.equals(expected), 'the device reads the rewrite');
      const object = engine.db.map('sealed', HEAD).get(0)!;
      const path = join(backend.url.slice('file://'.length), objectKey(object));
      assert.ok((await readFile(path)).equals(expected), 'the second upload stored the rewrite');
      assert.equal((await stat(path)).nlink, 2, 'the object and its cache file are one inode: no copy was written');
    } finally {
      await engine.close();
    }
  } finally {
    await removeTemp(dir);
    await backend.stop();
  }
});

test('linked uploads become durable together, before the map commit that names them', async () => {
  const backend = await startBackend('file');
  const dir = await tempDir('engine');
  try {
    const inner = await openObjectStore(backend.url);
    // What the store has linked, what a finished sync covered, and what each commit named.
    const linked = new Set<string>();
    const durable = new Set<string>();
    const named: string[] = [];
    let syncs = 0;
    const store = interceptStore(inner, {
      putFile: async (putFile, key, path) => {
        const out = await putFile(key, path);
        linked.add(key);
        return out;
      },
      syncFiles: async (syncFiles) => {
        const covered = [...linked];
        await syncFiles();
        syncs++;
        for (const key of covered) durable.add(key);
      },
      put: (put, key, body, options) => {
        if (key.includes('/log/')) {
          for (const op of (decode(body) as LogRecord).ops) {
            if (op.op === 'map') for (const [, object] of op.units) if (object) named.push(objectKey(object));
          }
        }
        return put(key, body, options);
      },
    });
    const engine = await openEngine(backend.url, dir, { store });
    let closed = false;
    try {
      const device = await engine.device((await engine.create('batched', { size: SIZE })).id);
      for (let unit = 0; unit < 8; unit++) await device.write(unit * UNIT, seededBytes(`unit ${unit}`, UNIT));
      await device.fsync();
      assert.equal(linked.size, 8, 'every unit was linked into the store');
      assert.equal(named.length, 8, 'every unit was committed');
      assert.deepEqual(named.filter((key) => !durable.has(key)), [], 'no commit named an object before a sync covered it');
      assert.ok(syncs >= 1 && syncs <= 8, `syncs are shared (${syncs} for 8 objects)`);
      const spares = async () => (await readdir(join(dir, 'dirty', 'batched'))).filter((name) => name.startsWith('spare-'));
      assert.ok((await spares()).length > 0, 'writes that start units made spare files ready');
      await engine.close();
      closed = true;
      assert.deepEqual(await spares(), [], 'spare files are removed on close');
    } finally {
      if (!closed) await engine.close();
    }
  } finally {
    await removeTemp(dir);
    await backend.stop();
  }
});

test('crc32Combine matches zlib over the concatenation', () => {
  for (const [a, b] of [[0, 5], [1, 1], [4096, 65536], [3, 1048573], [100, 0]] as const) {
    const x = seededBytes(`a${a}`, a);
    const y = seededBytes(`b${b}`, b);
    assert.equal(crc32Combine(crc32(x), crc32(y), b), crc32(Buffer.concat([x, y])), `${a} + ${b}`);
  }
});

test('a unit written in disjoint pieces, out of order, gets the checksum of its whole contents', async () => {
  const backend = await startBackend('file');
  const dirs = [await tempDir('engine'), await tempDir('engine')];
  try {
    const engine = await openEngine(backend.url, dirs[0]!);
    const device = await engine.device((await engine.create('pieces', { size: SIZE })).id);
    const model = Buffer.alloc(3 * UNIT);
    // Unit 0: four pieces in reverse order. Unit 1: pieces of zeros only (stored as no object).
    // Unit 2: an overlapping rewrite, which falls back to reading the file.
    for (const at of [3, 2, 1, 0].map((i) => (i * UNIT) / 4)) {
      const data = seededBytes(`piece${at}`, UNIT / 4);
      await device.write(at, data);
      data.copy(model, at);
    }
    await device.write(UNIT, Buffer.alloc(UNIT / 2));
    await device.write(UNIT + UNIT / 2, Buffer.alloc(UNIT / 2));
    for (const [at, length] of [[0, UNIT], [UNIT / 8, UNIT / 4]] as const) {
      const data = seededBytes(`over${at}`, length);
      await device.write(2 * UNIT + at, data);
      data.copy(model, 2 * UNIT + at);
    }
    await device.fsync();
    assert.deepEqual([...engine.db.map('pieces', HEAD).keys()].sort(), [0, 2], 'the all-zero unit has no object');
    await engine.close();
    const fresh = await openEngine(backend.url, dirs[1]!);
    try {
      const out = Buffer.alloc(3 * UNIT);
      // Every fetched object is verified against the checksum in its id.
      await (await fresh.device('pieces')).read(0, out);
      assert.ok(out.equals(model));
    } finally {
      await fresh.close();
    }
  } finally {
    for (const dir of dirs) await removeTemp(dir);
    await backend.stop();
  }
});
