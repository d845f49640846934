import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ApiError, toApiError } from '../../node/api/errors.ts';
import { ERROR_CODES } from '../../node/errors.ts';

const DOCS = new URL('../../docs/ERRORS.md', import.meta.url);

test('every error code is documented with its status, and the docs list no other code', async () => {
  const docs = await readFile(DOCS, 'utf8');
  const documented = new Map<string, number>();
  for (const match of docs.matchAll(/^\| `(ERR_[A-Z_]+|[a-z_]+)` \| (\d{3}) \|/gm)) documented.set(match[1]!, Number(match[2]));
  for (const [code, { status }] of Object.entries(ERROR_CODES)) assert.equal(documented.get(code), status, `${code} in docs/ERRORS.md`);
  assert.deepEqual([...documented.keys()].sort(), Object.keys(ERROR_CODES).sort());
});

test('errors from other units keep a known code and unknown ones become internal', () => {
  assert.equal(toApiError(Object.assign(new Error('gone'), { code: 'ERR_SESSION_NOT_FOUND' })).status, 404);
  assert.equal(toApiError(Object.assign(new Error('x'), { code: 'ENOENT' })).code, 'ERR_INTERNAL');
  assert.equal(new ApiError('ERR_NAME_TAKEN', 'taken').status, 409);
});
