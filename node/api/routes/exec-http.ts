import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { STREAM, readFrames, streamFrame } from '../../../vm/index.ts';
import type { SpriteManager } from '../../sprites.ts';
import { parseExecQuery } from '../exec-query.ts';
import { NAME, type Route } from '../router.ts';

// The SDK tells frames apart by the HTTP chunks it reads: each frame is one chunk of at most this
// many bytes, written on its own and followed by a pause, so the client reads it before the next.
const FRAME_BYTES = 16 * 1024;
const FRAME_GAP_MS = 20;
// Output queued beyond this stops reading from the sprite until it is sent.
const QUEUE_HIGH = 1024 * 1024;

/**
 * `POST /v1/sprites/{name}/exec`: the query of the exec WebSocket (no tty), the request body as
 * stdin when `stdin=true`, and an `application/octet-stream` answer of frames, each one HTTP
 * chunk: a type byte (1 stdout, 2 stderr, 3 exit) then the data; the exit frame's data is the
 * status byte, and it comes last. The SDK (`execFileHTTP`) has no lengths in this framing and
 * relies on chunk boundaries surviving, so output is sent in few, paced chunks (best effort: a
 * client that reads two chunks at once sees them joined). Hanging up kills the command.
 */
export function execHttpRoute(sprites: Pick<SpriteManager, 'awake'>): Route {
  return {
    method: 'POST',
    auth: 'org',
    pattern: new RegExp(`^/v1/sprites/${NAME}/exec$`),
    uses: true,
    handler: async ({ req, res, params, url }) => {
      const request = parseExecQuery(url, 'http');
      const { socket } = await (await sprites.awake(params.name!)).stream({ op: 'exec', ...request, detachable: false, maxRunAfterDisconnectMs: null });
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'no-store' });
      socket.on('error', () => undefined);
      res.once('close', () => socket.destroy());
      if (request.stdin) {
        req.on('data', (chunk: Buffer) => {
          if (!socket.write(streamFrame(STREAM.stdin, chunk))) {
            req.pause();
            socket.once('drain', () => req.resume());
          }
        });
        req.once('end', () => socket.write(streamFrame(STREAM.stdinEof)));
      } else {
        req.resume();
      }
      await sendPaced(socket, res);
    },
  };
}

/** Queues sprite-init's output frames and writes them to `res` as paced chunks, the exit last. */
async function sendPaced(socket: Socket, res: ServerResponse): Promise<void> {
  const queue: Array<{ stream: number; data: Buffer }> = [];
  let queued = 0;
  let status: number | undefined;
  let wake: (() => void) | undefined;
  const poke = (): void => {
    wake?.();
    wake = undefined;
  };
  readFrames(socket, (payload) => {
    const stream = payload[0]!;
    if (stream === STREAM.exit) status = payload[1] ?? 1;
    else if (stream === STREAM.stdout || stream === STREAM.stderr) {
      queue.push({ stream, data: Buffer.from(payload.subarray(1)) });
      queued += payload.length - 1;
      if (queued > QUEUE_HIGH) socket.pause();
    }
    poke();
  });
  let closed = false;
  socket.once('close', () => {
    closed = true;
    poke();
  });
  res.once('close', poke);
  let first = true;
  while (!res.destroyed) {
    if (queue.length === 0) {
      if (status !== undefined || closed) break;
      await new Promise<void>((resolve) => (wake = resolve));
      continue;
    }
    if (!first) await sleep(FRAME_GAP_MS);
    first = false;
    const data = take(queue, FRAME_BYTES);
    queued -= data.data.length;
    if (queued <= QUEUE_HIGH / 2 && socket.isPaused()) socket.resume();
    await write(res, Buffer.concat([Buffer.of(data.stream), data.data]));
  }
  if (res.destroyed) return;
  if (status === undefined) {
    // sprite-init went away without an exit: cut the answer so the client sees a failure.
    res.destroy();
    return;
  }
  if (!first) await sleep(FRAME_GAP_MS);
  res.end(Buffer.of(STREAM.exit, status));
}

/** Up to `max` bytes from the head of the queue, joining entries of the same stream. */
function take(queue: Array<{ stream: number; data: Buffer }>, max: number): { stream: number; data: Buffer } {
  const stream = queue[0]!.stream;
  const parts: Buffer[] = [];
  let size = 0;
  while (queue.length > 0 && queue[0]!.stream === stream && size < max) {
    const head = queue[0]!;
    const room = max - size;
    if (head.data.length <= room) {
      parts.push(head.data);
      size += head.data.length;
      queue.shift();
    } else {
      parts.push(head.data.subarray(0, room));
      head.data = head.data.subarray(room);
      size += room;
    }
  }
  return { stream, data: Buffer.concat(parts) };
}

function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (res.write(chunk)) resolve();
    else {
      res.once('drain', resolve);
      res.once('close', resolve);
    }
  });
}
