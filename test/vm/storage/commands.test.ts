import assert from 'node:assert/strict';
import { test } from 'node:test';
import { command } from '../../../vm/storage/daemon/mounts.ts';

test('a system command resolves with all of its output, even when it exits before the output is read', async () => {
  // `losetup --show` once seemed to print nothing under load: the result came from the exit event.
  const runs = await Promise.all(Array.from({ length: 20 }, () => command('sh', ['-c', 'head -c 3000000 /dev/zero | tr "\\000" a; echo'])));
  for (const out of runs) assert.equal(out.length, 3_000_001);
  await assert.rejects(command('sh', ['-c', 'echo nope >&2; exit 3']), /nope/);
});
