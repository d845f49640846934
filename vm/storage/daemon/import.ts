import { open } from 'node:fs/promises';
import type { BlockDevice } from '../device/device.ts';
import { command } from './mounts.ts';

/** Byte ranges of a file that hold data, from FIEMAP (`filefrag -e`); undefined when unsupported. */
export async function dataExtents(file: string): Promise<Array<[number, number]> | undefined> {
  let out: string;
  try {
    out = await command('filefrag', ['-e', file]);
  } catch {
    return undefined;
  }
  const block = Number(/blocks of (\d+) bytes/.exec(out)?.[1]);
  if (!block) return undefined;
  const ranges: Array<[number, number]> = [];
  for (const line of out.split('\n')) {
    const match = /^\s*\d+:\s*(\d+)\.\.\s*(\d+):/.exec(line);
    // Unwritten (preallocated) extents read as zeros: nothing to copy.
    if (!match || /unwritten/.test(line)) continue;
    ranges.push([Number(match[1]) * block, (Number(match[2]) + 1) * block]);
  }
  return ranges;
}

/**
 * Copies an image file onto a device, skipping holes (FIEMAP extents when the host filesystem
 * reports them, else by reading everything and skipping zero chunks) and flushes it. Only
 * written units become objects, so a 100 GiB image with a few MiB of data stays a few MiB.
 */
export async function importFile(device: BlockDevice, file: string): Promise<{ bytes: number }> {
  const handle = await open(file, 'r');
  try {
    const size = (await handle.stat()).size;
    const ranges = (await dataExtents(file)) ?? [[0, size] as [number, number]];
    const chunk = Buffer.alloc(device.unitSize);
    const zeros = Buffer.alloc(device.unitSize);
    let bytes = 0;
    for (const [start, end] of ranges) {
      for (let at = start; at < Math.min(end, size, device.size); at += chunk.length) {
        const length = Math.min(chunk.length, end - at, device.size - at);
        const view = chunk.subarray(0, length);
        const { bytesRead } = await handle.read(view, 0, length, at);
        if (bytesRead === 0 || view.subarray(0, bytesRead).equals(zeros.subarray(0, bytesRead))) continue;
        await device.write(at, view.subarray(0, bytesRead));
        bytes += bytesRead;
      }
    }
    await device.flush();
    return { bytes };
  } finally {
    await handle.close();
  }
}
