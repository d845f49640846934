/**
 * The file agent's wire format, shared by the agent (inside the sprite) and the peer. One request per
 * connection: a header frame (u32 big-endian length, then JSON), then, for a write, body frames
 * (u32 length, then bytes; an empty frame ends the body). The answer is a header frame
 * (`{ok: true, result}` or `{ok: false, error: {code, message, path}}`), then for a read the file's
 * bytes and for a list or a watch one JSON object per line, until the agent closes the connection.
 * Dependency-free: it runs on the Node runtime at /.sprite/bin.
 */
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';

/** Largest header either side sends; larger is a broken or hostile other end. */
export const MAX_HEADER = 64 * 1024;

/** Largest body frame; the peer splits bigger chunks. */
export const MAX_BODY_FRAME = 4 * 1024 * 1024;

/** Ends a body. */
export const BODY_END = Buffer.alloc(4);

/** Encodes a JSON header frame. */
export function headerFrame(value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(json.length, 0);
  return Buffer.concat([head, json]);
}

/** The 4-byte head of a body frame of `length` bytes. */
export function bodyFrameHead(length: number): Buffer {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(length, 0);
  return head;
}

/**
 * Reads one request from a connection: `header` resolves with the parsed header frame, `body` is a
 * stream of the body frames' bytes that pauses the connection while its reader is behind.
 */
export class RequestReader {
  readonly body: Readable;
  readonly header: Promise<unknown>;
  readonly #socket: Socket;
  #pending: Buffer = Buffer.alloc(0);
  #headerDone = false;
  /** Bytes left in the current body frame; -1 between frames. */
  #left = -1;
  #resolve!: (value: unknown) => void;
  #reject!: (error: Error) => void;

  constructor(socket: Socket) {
    this.#socket = socket;
    this.header = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.header.catch(() => undefined);
    this.body = new Readable({ highWaterMark: 1024 * 1024, read: () => socket.resume() });
    // Only a write reads the body; for any other request a cut connection must not throw.
    this.body.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#fail(new Error('connection ended before the request did')));
    socket.on('close', () => this.#fail(new Error('connection closed')));
  }

  #fail(error: Error): void {
    if (!this.#headerDone) this.#reject(error);
    else if (!this.body.readableEnded && !this.body.destroyed) this.body.destroy(error);
  }

  #onData(chunk: Buffer): void {
    let data = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pending = Buffer.alloc(0);
    if (!this.#headerDone) {
      if (data.length < 4) return void (this.#pending = data);
      const length = data.readUInt32BE(0);
      if (length > MAX_HEADER) return void this.#socket.destroy(new Error('request header too large'));
      if (data.length < 4 + length) return void (this.#pending = data);
      this.#headerDone = true;
      try {
        this.#resolve(JSON.parse(data.subarray(4, 4 + length).toString('utf8')));
      } catch {
        this.#reject(new Error('request header is not JSON'));
      }
      data = data.subarray(4 + length);
    }
    while (data.length > 0 && !this.body.readableEnded) {
      if (this.#left < 0) {
        if (data.length < 4) return void (this.#pending = data);
        this.#left = data.readUInt32BE(0);
        data = data.subarray(4);
        if (this.#left === 0) {
          this.body.push(null);
          return;
        }
        if (this.#left > MAX_BODY_FRAME) return void this.#socket.destroy(new Error('body frame too large'));
      }
      const piece = data.subarray(0, this.#left);
      data = data.subarray(piece.length);
      this.#left -= piece.length;
      if (this.#left === 0) this.#left = -1;
      if (!this.body.push(piece)) this.#socket.pause();
    }
  }
}
