import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';

/** sprite-init's code, and the sprite machine modules beside it that it and the sandbox use. */
const DIRS = [new URL('./', import.meta.url), new URL('./init/', import.meta.url)];

/**
 * The runtime version a sandbox started now gets: a short hash of the sprite machine's code as it
 * is on disk (vm/*.ts and vm/init/*.ts). sprite-init is started from these files on every sandbox
 * start, so a sprite runs the code of its last start until its next one, whatever the peer's files
 * are by then; comparing versions tells whether it does.
 */
export async function runtimeVersion(): Promise<string> {
  const hash = createHash('sha256');
  for (const dir of DIRS) {
    const names = (await readdir(dir)).filter((name) => name.endsWith('.ts')).sort();
    for (const name of names) hash.update(name).update('\0').update(await readFile(new URL(name, dir))).update('\0');
  }
  return hash.digest('hex').slice(0, 12);
}
