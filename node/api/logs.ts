import { open } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';

const POLL_MS = 200;
const CHUNK = 64 * 1024;

/** Streams a log file as text/plain; with `follow`, keeps sending what is appended until the client leaves. */
export async function streamLog(req: IncomingMessage, res: ServerResponse, path: string, follow: boolean): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  let closed = false;
  req.once('close', () => {
    closed = true;
  });
  let position = 0;
  const buffer = Buffer.alloc(CHUNK);
  while (!closed) {
    // A log that does not exist yet is empty: the service may not have written anything.
    const file = await open(path, 'r').catch(() => undefined);
    if (file) {
      try {
        for (;;) {
          const { bytesRead } = await file.read(buffer, 0, CHUNK, position);
          if (bytesRead === 0) break;
          position += bytesRead;
          if (!res.write(Buffer.from(buffer.subarray(0, bytesRead)))) await new Promise((resolve) => res.once('drain', resolve));
        }
      } finally {
        await file.close();
      }
    }
    if (!follow) break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  res.end();
}

/** How much of a log file's end `tailEvents` reads. */
const TAIL_BYTES = 256 * 1024;

/**
 * The last `lines` lines of a service's log file as service log events, for a sprite that is not
 * running (its sprite-init, which knows stdout from stderr, is not there to ask): they count as stdout.
 */
export async function tailEvents(path: string, lines: number): Promise<{ type: 'stdout'; data: string; timestamp: number }[]> {
  const file = await open(path, 'r').catch(() => undefined);
  if (!file || lines === 0) {
    await file?.close();
    return [];
  }
  try {
    const { size, mtimeMs } = await file.stat();
    const start = Math.max(0, size - TAIL_BYTES);
    const buffer = Buffer.alloc(size - start);
    await file.read(buffer, 0, buffer.length, start);
    const all = buffer.toString('utf8').split(/(?<=\n)/).filter((line) => line.length > 0);
    if (start > 0) all.shift();
    return all.slice(-lines).map((data) => ({ type: 'stdout' as const, data, timestamp: Math.floor(mtimeMs) }));
  } finally {
    await file.close();
  }
}
