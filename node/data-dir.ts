import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
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

/** The secret that signs the proxy's login sessions: derived from the swarm key like the hop secret, but apart from it. */
export async function sessionSecret(swarmKeyFile: string): Promise<Buffer> {
  const key = await readFile(swarmKeyFile);
  return createHash('sha256').update('sprite-proxy-session\n').update(key).digest();
}

/** The secret that signs proxy hops: every holder of the swarm key derives the same one. */
export async function hopSecret(swarmKeyFile: string): Promise<Buffer> {
  const key = await readFile(swarmKeyFile);
  return createHash('sha256').update('sprite-proxy-hop\n').update(key).digest();
}
