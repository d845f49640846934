import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hasCode } from '../../../vm/storage/errors.ts';
import { openObjectStore, redactUrl } from '../../../vm/storage/store/open.ts';
import { listAll, type ObjectStore } from '../../../vm/storage/store/store.ts';
import { removeTemp, seededBytes, startBackend, tempDir, type StoreBackend } from './helpers.ts';

for (const name of ['file', 's3'] as const) {
  describe(`${name} object store`, () => {
    let backend: StoreBackend;
    let store: ObjectStore;
    before(async () => {
      backend = await startBackend(name);
      store = await openObjectStore(backend.url);
    });
    after(async () => {
      await store?.close();
      await backend?.stop();
    });

    test('put, get, overwrite and delete round-trip bytes exactly', async () => {
      const body = seededBytes('round-trip', 1024 * 1024 + 17);
      await store.put('objects/a', body);
      assert.ok((await store.get('objects/a')).body.equals(body));
      await store.put('objects/a', Buffer.from('second'));
      assert.equal((await store.get('objects/a')).body.toString(), 'second');
      await store.delete('objects/a');
      await store.delete('objects/a');
      await assert.rejects(store.get('objects/a'), (error) => hasCode(error, 'ERR_OBJECT_NOT_FOUND'));
    });

    test('list returns keys under a prefix in lexical order, relative to the store root', async () => {
      for (const key of ['v/x/log/0002', 'v/x/log/0001', 'v/x/snap/0001', 'v/y/log/0001', 'v/xx/log/0001']) await store.put(key, Buffer.from(key));
      assert.deepEqual((await listAll(store, 'v/x/log/')).map((info) => info.key), ['v/x/log/0001', 'v/x/log/0002']);
      assert.deepEqual((await listAll(store, 'v/x/')).map((info) => info.key), ['v/x/log/0001', 'v/x/log/0002', 'v/x/snap/0001']);
      assert.deepEqual((await listAll(store, 'v/x')).map((info) => info.key).length, 4);
      const info = (await listAll(store, 'v/y/'))[0]!;
      assert.equal(info.size, 'v/y/log/0001'.length);
      assert.ok(info.modified > Date.now() - 600_000);
      assert.deepEqual(await listAll(store, 'nothing/'), []);
    });

    test('conditional writes are enforced when the store says it supports them', async () => {
      const first = await store.put('lease', Buffer.from('1'), { ifNoneMatch: true });
      if (!store.conditionalWrites) return;
      await assert.rejects(store.put('lease', Buffer.from('2'), { ifNoneMatch: true }), (error) => hasCode(error, 'ERR_PRECONDITION_FAILED'));
      const second = await store.put('lease', Buffer.from('2'), { ifMatch: first.etag });
      await assert.rejects(store.put('lease', Buffer.from('3'), { ifMatch: first.etag }), (error) => hasCode(error, 'ERR_PRECONDITION_FAILED'));
      assert.equal((await store.get('lease')).etag, second.etag);
      assert.equal((await store.get('lease')).body.toString(), '2');
    });
  });
}

test('store urls are validated and redacted', async () => {
  await assert.rejects(openObjectStore('file://relative/dir'), (error) => hasCode(error, 'ERR_STORAGE_CONFIG'));
  await assert.rejects(openObjectStore('s3://key:secret@bucket/p'), (error) => hasCode(error, 'ERR_STORAGE_CONFIG'));
  await assert.rejects(openObjectStore('s3://bucket/p?bogus=1'), (error) => hasCode(error, 'ERR_STORAGE_CONFIG'));
  await assert.rejects(openObjectStore('ftp://x/y'), (error) => hasCode(error, 'ERR_STORAGE_CONFIG'));
  assert.equal(redactUrl('s3://key:secret@bucket/p?endpoint=http://h'), 's3://bucket/p?endpoint=http://h');
});

test('a file store links files in at once and syncs them later, together; an object deleted before the sync is no error', async () => {
  const backend = await startBackend('file');
  const dir = await tempDir('linked');
  const store = await openObjectStore(backend.url);
  try {
    assert.ok(store.putFile && store.syncFiles, 'the file store offers linked puts');
    const bodies = [seededBytes('one', 4096), seededBytes('two', 8192)];
    for (const [i, body] of bodies.entries()) {
      await writeFile(join(dir, `f${i}`), body);
      await store.putFile(`objects/linked-${i}`, join(dir, `f${i}`));
    }
    for (const [i, body] of bodies.entries()) assert.ok((await store.get(`objects/linked-${i}`)).body.equals(body), 'readable before the sync');
    await store.delete('objects/linked-1');
    await store.syncFiles();
    await Promise.all([store.syncFiles(), store.syncFiles()]);
    assert.ok((await store.get('objects/linked-0')).body.equals(bodies[0]!));
  } finally {
    await store.close();
    await removeTemp(dir);
    await backend.stop();
  }
});
