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
