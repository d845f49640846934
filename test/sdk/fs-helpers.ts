import assert from 'node:assert/strict';
import { FilesystemError, type Sprite } from '@fly/sprites';

/** Runs `sh -c script` in the sprite (the SDK's exec); its stdout. */
export async function inside(sprite: Sprite, script: string): Promise<string> {
  const { stdout } = await sprite.execFile('sh', ['-c', script]);
  return String(stdout);
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
