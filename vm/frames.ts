import type { Socket } from 'node:net';
import { decode, encode } from 'cbor-x';

/**
 * Length-prefixed frames between the peer and sprite-init over a Unix socket.
 * Every frame is a u32 big-endian length followed by the payload. The first frame of a
 * connection is a cbor request and the second a cbor reply; stream connections (exec,
 * attach) then carry frames whose first byte is a stream id (see STREAM) or CONTROL.
 */

/** Stream ids of exec frames, shared with the WebSocket API. */
export const STREAM = { stdin: 0, stdout: 1, stderr: 2, exit: 3, stdinEof: 4 } as const;

/** First byte of a frame whose rest is a cbor control message (resize, session id). */
export const CONTROL = 255;

/** Largest frame either side accepts; larger means a broken or hostile peer. */
export const MAX_FRAME = 4 * 1024 * 1024;

/** Encodes a payload as one frame. */
export function frame(payload: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(payload.length, 0);
  return Buffer.concat([head, payload]);
}

/** Encodes a cbor message as one frame. */
export function messageFrame(message: unknown): Buffer {
  return frame(encode(message));
}

/** Encodes a stream frame: one id byte then the data. */
export function streamFrame(id: number, data: Uint8Array = Buffer.alloc(0)): Buffer {
  return frame(Buffer.concat([Buffer.of(id), data]));
}

/** Encodes a control message frame. */
export function controlFrame(message: unknown): Buffer {
  return frame(Buffer.concat([Buffer.of(CONTROL), encode(message)]));
}

/** Decodes the cbor message of a control frame payload. */
export function decodeControl(payload: Buffer): unknown {
  return decode(payload.subarray(1));
}

/** Decodes a cbor message payload. */
export function decodeMessage(payload: Buffer): unknown {
  return decode(payload);
}

/** Calls `onFrame` for every whole frame read from the socket; destroys the socket on an oversized frame. */
export function readFrames(socket: Socket, onFrame: (payload: Buffer) => void): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
      const length = pending.readUInt32BE(0);
      if (length > MAX_FRAME) {
        socket.destroy(new Error(`frame of ${length} bytes exceeds ${MAX_FRAME}`));
        return;
      }
      if (pending.length < 4 + length) break;
      const payload = pending.subarray(4, 4 + length);
      pending = pending.subarray(4 + length);
      onFrame(payload);
      if (socket.destroyed) return;
    }
  });
  socket.resume();
}

/**
 * Reads exactly one frame and leaves the socket paused with any bytes after it unread,
 * so the caller can switch the connection to frames or to a raw byte stream.
 */
export function readOneFrame(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0);
    const done = (error?: Error, payload?: Buffer): void => {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      if (error) reject(error);
      else resolve(payload as Buffer);
    };
    const onData = (chunk: Buffer): void => {
      pending = Buffer.concat([pending, chunk]);
      if (pending.length < 4) return;
      const length = pending.readUInt32BE(0);
      if (length > MAX_FRAME) {
        done(new Error(`frame of ${length} bytes exceeds ${MAX_FRAME}`));
        socket.destroy();
        return;
      }
      if (pending.length < 4 + length) return;
      socket.pause();
      const rest = pending.subarray(4 + length);
      if (rest.length > 0) socket.unshift(rest);
      done(undefined, pending.subarray(4, 4 + length));
    };
    const onClose = (): void => done(new Error('connection closed before a whole frame'));
    const onError = (error: Error): void => done(error);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onError);
  });
}
