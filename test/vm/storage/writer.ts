import { createHash } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { seededBytes } from './helpers.ts';

/** What a checksummed write produced: relative path -> sha256 of its content. */
export type Manifest = Map<string, string>;

/**
 * The project's checksummed writer: writes `files` files of varied sizes (up to `maxBytes`) with
 * content derived from `seed`, fsyncs each one, and returns their checksums for {@link verifyTree}.
 */
export async function writeTree(dir: string, seed: string, options: { files: number; maxBytes: number }): Promise<Manifest> {
  const manifest: Manifest = new Map();
  const sizes = seededBytes(`${seed}:sizes`, options.files * 4);
  for (let i = 0; i < options.files; i++) {
    const path = `d${i % 7}/f${i}`;
    const size = 1 + (sizes.readUInt32LE(i * 4) % options.maxBytes);
    const data = seededBytes(`${seed}:${path}`, size);
    await mkdir(dirname(join(dir, path)), { recursive: true });
    const handle = await open(join(dir, path), 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    manifest.set(path, createHash('sha256').update(data).digest('hex'));
  }
  return manifest;
}

/** Reads every file of a manifest and throws, listing the first mismatches, unless all match. */
export async function verifyTree(dir: string, manifest: Manifest): Promise<void> {
  const bad: string[] = [];
  for (const [path, sum] of manifest) {
    const data = await readFile(join(dir, path)).catch((error: Error) => Buffer.from(`unreadable: ${error.message}`));
    if (createHash('sha256').update(data).digest('hex') !== sum) bad.push(path);
  }
  if (bad.length > 0) throw new Error(`${bad.length} of ${manifest.size} files differ: ${bad.slice(0, 5).join(', ')}`);
}
