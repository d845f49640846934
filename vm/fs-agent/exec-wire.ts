/**
 * The wire of one exec between sprite-init and the sprite agent, on its own connection. sprite-init
 * sends a frame holding the JSON request `{command, env, dir}`, then stdin frames; the agent sends
 * the command's pid, its output, and its exit status last. Every frame is a u32 big-endian length,
 * then a kind byte and its data (the kinds of stdin, stdout, stderr and exit are the exec stream ids
 * of vm/frames.ts). Dependency-free: it runs on the Node runtime at /.sprite/bin.
 */

export const EXEC = { stdin: 0, stdout: 1, stderr: 2, exit: 3, stdinEof: 4, pid: 5, request: 6 } as const;

/** Largest frame either side sends (the request with its environment included); larger is a broken other end. */
export const MAX_EXEC_FRAME = 1024 * 1024;

/** Encodes one frame of `kind`. */
export function execFrame(kind: number, data: Uint8Array = Buffer.alloc(0)): Buffer {
  const head = Buffer.allocUnsafe(5);
  head.writeUInt32BE(data.length + 1, 0);
  head[4] = kind;
  return Buffer.concat([head, data]);
}

/** A u32 frame body (the pid). */
export function u32(value: number): Buffer {
  const data = Buffer.allocUnsafe(4);
  data.writeUInt32BE(value, 0);
  return data;
}

/**
 * Splits a byte stream into frames. `push` answers false, and keeps nothing, once a frame is empty
 * or larger than MAX_EXEC_FRAME: the caller cuts the connection.
 */
export class ExecFrames {
  readonly #onFrame: (kind: number, data: Buffer) => void;
  #pending: Buffer = Buffer.alloc(0);

  constructor(onFrame: (kind: number, data: Buffer) => void) {
    this.#onFrame = onFrame;
  }

  push(chunk: Buffer): boolean {
    let data = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (data.length >= 4) {
      const length = data.readUInt32BE(0);
      if (length === 0 || length > MAX_EXEC_FRAME) {
        this.#pending = Buffer.alloc(0);
        return false;
      }
      if (data.length < 4 + length) break;
      this.#onFrame(data[4]!, data.subarray(5, 4 + length));
      data = data.subarray(4 + length);
    }
    this.#pending = data;
    return true;
  }
}
