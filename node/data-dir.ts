import { createHash } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../vm/index.ts';

/** One peer per data dir: a second start on the same dir fails instead of corrupting it. */
export async function lockDataDir(dir: string): Promise<void> {
  const lock = join(dir, 'peer.pid');
  const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
  if (holder && holder !== process.pid && processAlive(holder)) throw new Error(`another peer (pid ${holder}) uses ${dir}`);
  await writeFile(lock, `${process.pid}\n`);
}

/** Releases the data dir's lock. */
export async function unlockDataDir(dir: string): Promise<void> {
  await rm(join(dir, 'peer.pid'), { force: true });
}

/** The text in `path`, or a new one from `make` written there (readable by its owner only) when there is none. */
export async function loadOrCreate(path: string, make: () => string): Promise<{ token: string; created: boolean }> {
  try {
    return { token: (await readFile(path, 'utf8')).trim(), created: false };
  } catch {
    const token = make();
    await writeFile(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
    return { token, created: true };
  }
}

/** Replaces a file readable by its owner only, atomically (written beside it, then renamed over it). */
export async function replaceFile(path: string, text: string): Promise<void> {
  await writeFile(`${path}.new`, text, { mode: 0o600 });
  await rename(`${path}.new`, path);
}

/**
 * A secret every holder of the swarm key derives alike, one per use so none signs what another
 * does: `hop` signs hops between peers, `session` the proxy's login sessions.
 */
export async function meshSecret(swarmKeyFile: string, use: 'hop' | 'session'): Promise<Buffer> {
  const key = await readFile(swarmKeyFile);
  return createHash('sha256').update(`sprite-proxy-${use}\n`).update(key).digest();
}
