/**
 * The peer's side of a sprite's file agent (vm/fs-agent/wire.ts): sends one request on a connection
 * sprite-init spliced to the agent, streams a write's body, and reads the answer. Whatever the agent
 * says is untrusted (the sprite's root can replace it): answers are bounded and their envelope
 * checked here, anything malformed is ERR_FS_AGENT; the caller checks the result's fields.
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { VmError } from './errors.ts';
import { readOneFrame } from './frames.ts';
import { BODY_END, bodyFrameHead, headerFrame, MAX_BODY_FRAME } from './fs-agent/wire.ts';

/** Longest line of a list or watch stream. */
const MAX_LINE = 64 * 1024;

/** Bytes a stream may queue on a socket before its source pauses. */
export const BUFFERED = 1024 * 1024;

/** A filesystem error the agent reported: `code` is an errno name (ENOENT, EISDIR, ...). */
export class FsError extends Error {
  readonly code: string;
  readonly path: string | undefined;

  constructor(code: string, message: string, path: string | undefined) {
    super(message);
    this.name = 'FsError';
    this.code = code;
    this.path = path;
  }
}

/** A malformed answer from inside the sprite. */
export function agentError(what: string): VmError {
  return new VmError('ERR_FS_AGENT', `the sprite's file agent ${what}`);
}

/** An upload in progress: `stop` stops sending and lets the rest of the body drain unread. */
export interface Upload {
  done: Promise<number>;
  stop(): void;
}

/**
 * Sends `request` on `socket`; with `body`, streams it as body frames. Resolves with the answer's
 * result once its header arrives (for a write: after the body, or early on an error), rejects with
 * FsError or ERR_FS_AGENT. The socket then carries what follows the answer, paused.
 */
export async function fsRequest(socket: Socket, request: object, body?: Readable): Promise<{ result: unknown; upload?: Upload }> {
  socket.on('error', () => undefined);
  const answer = readOneFrame(socket);
  // The control client's own read left the connection paused.
  socket.resume();
  socket.write(headerFrame(request));
  const upload = body ? sendBody(socket, body) : undefined;
  let payload: Buffer;
  try {
    payload = await answer;
  } catch {
    upload?.stop();
    throw agentError('closed the connection without an answer');
  }
  const reply = parse(payload);
  if (reply.ok) return { result: reply.result, upload };
  upload?.stop();
  throw reply.error;
}

function parse(payload: Buffer): { ok: true; result: unknown } | { ok: false; error: FsError } {
  let reply: { ok?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown; path?: unknown } };
  try {
    reply = JSON.parse(payload.toString('utf8'));
  } catch {
    throw agentError('answered something that is not JSON');
  }
  if (reply?.ok === true && typeof reply.result === 'object' && reply.result !== null) return { ok: true, result: reply.result };
  const error = reply?.error;
  if (reply?.ok !== false || typeof error?.code !== 'string' || !/^E[A-Z0-9]{1,20}$/.test(error.code) || typeof error.message !== 'string') {
    throw agentError('answered something malformed');
  }
  const path = typeof error.path === 'string' && error.path.length <= 4096 ? error.path : undefined;
  return { ok: false, error: new FsError(error.code, error.message.slice(0, 1024), path) };
}

/** Streams `body` as body frames with backpressure, then the end frame; `done` resolves with the bytes sent. */
function sendBody(socket: Socket, body: Readable): Upload {
  let sent = 0;
  let stopped = false;
  const onData = (chunk: Buffer): void => {
    for (let at = 0; at < chunk.length; at += MAX_BODY_FRAME) {
      const piece = chunk.subarray(at, at + MAX_BODY_FRAME);
      sent += piece.length;
      socket.cork();
      socket.write(bodyFrameHead(piece.length));
      socket.write(piece);
      socket.uncork();
      // Paused only past BUFFERED (a socket's own mark, 16 KiB, would pause after every chunk); 'drain'
      // comes because the write past the mark returned false.
      if (socket.writableLength > BUFFERED && !body.isPaused()) {
        body.pause();
        socket.once('drain', () => stopped || body.resume());
      }
    }
  };
  const done = new Promise<number>((resolve, reject) => {
    body.once('end', () => {
      if (!stopped) socket.write(BODY_END);
      resolve(sent);
    });
    body.once('error', reject);
    // A body that stops before its end (the client went away) must not become a shorter file.
    body.once('close', () => {
      if (!body.readableEnded) {
        socket.destroy();
        reject(new Error('the request body was cut'));
      }
    });
  });
  done.catch(() => undefined);
  body.on('data', onData);
  return {
    done,
    stop: () => {
      stopped = true;
      body.off('data', onData);
      body.resume();
    },
  };
}

/** The JSON lines that follow an answer (list entries, watch events), each bounded; ends when the agent closes. */
export async function* jsonLines(socket: Socket): AsyncGenerator<unknown> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of socket as AsyncIterable<Buffer>) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let newline: number;
    while ((newline = pending.indexOf(10)) >= 0) {
      const line = pending.subarray(0, newline);
      pending = pending.subarray(newline + 1);
      if (line.length === 0) continue;
      let value: unknown;
      try {
        value = JSON.parse(line.toString('utf8'));
      } catch {
        throw agentError('sent a line that is not JSON');
      }
      yield value;
    }
    if (pending.length > MAX_LINE) throw agentError(`sent a line over ${MAX_LINE} bytes`);
  }
  if (pending.length > 0) throw agentError('ended in the middle of a line');
}
