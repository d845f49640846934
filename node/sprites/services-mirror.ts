import { watch } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

/** Definitions larger than this stay local: every peer's replica would carry them. */
const MAX_MIRRORED_BYTES = 64 * 1024;

/**
 * Copies a sprite's service definitions (the file sprite-init keeps, changed through the API or
 * by `sprite-env services` inside the sprite) into its replicated record whenever the file
 * changes, so a peer that takes the sprite over after a failover or a drain starts the same
 * services. Returns the stop function.
 */
export function mirrorServices(file: string, publish: (text: string) => void): () => void {
  let last: string | undefined;
  const sync = async (): Promise<void> => {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined || text === last || Buffer.byteLength(text) > MAX_MIRRORED_BYTES) return;
    last = text;
    publish(text);
  };
  // The file is replaced by a rename, so watch its directory.
  const watcher = watch(dirname(file), (_event, changed) => {
    if (changed === basename(file)) void sync();
  });
  watcher.on('error', () => undefined);
  void sync();
  return () => watcher.close();
}

/** Puts mirrored definitions in place for a sprite new to this peer (a file already there wins). */
export async function restoreServices(file: string, text: string | null): Promise<void> {
  if (text === null) return;
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, text, { flag: 'wx' }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
}
