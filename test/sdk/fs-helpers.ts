import assert from 'node:assert/strict';
import { FilesystemError } from '@fly/sprites';
import type { PeerProcess } from '../helpers/peer.ts';

/** Runs `sh -c script` in the sprite through the CLI; its stdout. */
export async function inside(peer: PeerProcess, name: string, script: string): Promise<string> {
  const result = await peer.cli(['exec', name, '--', 'sh', '-c', script]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout;
}

/** The FilesystemError a call fails with. */
export async function fsError(call: Promise<unknown>): Promise<FilesystemError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof FilesystemError, String(error));
    return error;
  }
  assert.fail('expected a FilesystemError');
}
