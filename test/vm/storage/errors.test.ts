import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { validateConfig } from '../../../vm/storage/daemon/config.ts';
import { STORAGE_ERROR_CODES, StorageError, hasCode } from '../../../vm/storage/errors.ts';

const DOCS = new URL('../../../docs/STORAGE.md', import.meta.url);

test('every storage error code is documented in docs/STORAGE.md, and the docs list no other', async () => {
  const docs = await readFile(DOCS, 'utf8');
  const documented = [...docs.matchAll(/^\| `(ERR_[A-Z_]+)` \|/gm)].map((match) => match[1]!);
  assert.deepEqual([...documented].sort(), Object.keys(STORAGE_ERROR_CODES).sort());
});

test('errors carry their code, fields and cause, and are recognized by code', () => {
  const cause = new Error('inner');
  const error = new StorageError('ERR_OBJECT_CORRUPT', 'object x failed its checksum', { cause, fields: { key: 'objects/x' } });
  assert.equal(error.code, 'ERR_OBJECT_CORRUPT');
  assert.equal(error.cause, cause);
  assert.deepEqual(error.fields, { key: 'objects/x' });
  assert.ok(hasCode(error, 'ERR_OBJECT_CORRUPT'));
  assert.ok(hasCode({ code: 'ERR_OBJECT_CORRUPT' }, 'ERR_OBJECT_CORRUPT'));
  assert.ok(!hasCode(new Error('x'), 'ERR_OBJECT_CORRUPT'));
});

test('the daemon configuration rejects unknown keys and bad values, and is frozen', () => {
  const base = { dataDir: '/tmp/x', objectStore: 'file:///tmp/y' };
  assert.ok(Object.isFrozen(validateConfig({ ...base, device: { mode: 'relaxed' as const } })));
  assert.throws(() => validateConfig({ ...base, bogus: 1 } as never), (error) => hasCode(error, 'ERR_STORAGE_CONFIG'));
  assert.throws(() => validateConfig({ ...base, device: { speed: 1 } } as never), /unknown device option speed/);
  assert.throws(() => validateConfig({ ...base, device: { mode: 'fast' } } as never), /strict or relaxed/);
  assert.throws(() => validateConfig({ ...base, cacheBytes: -1 }), /positive/);
  assert.throws(() => validateConfig({ dataDir: '/tmp/x' } as never), /objectStore is required/);
});
