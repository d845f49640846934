import net from 'node:net';
import { decodeMessage, messageFrame, readOneFrame } from './frames.ts';
import { VmError } from './errors.ts';

interface Reply {
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

/**
 * Client of one sprite-init's control socket (and, from sprite-init, of the peer's request socket:
 * the framing is the same). Every request is its own connection.
 */
export class ControlClient {
  readonly #path: string;
  readonly #server: string;

  /** `server` names the other side in error messages. */
  constructor(path: string, server = 'sprite-init') {
    this.#path = path;
    this.#server = server;
  }

  /** Sends a request and resolves with its result; sprite-init's errors keep their codes. */
  async call<T>(request: { op: string; [key: string]: unknown }, timeoutMs = 30_000): Promise<T> {
    const socket = await this.#connect();
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`${this.#server} did not answer ${request.op} in ${timeoutMs} ms`)));
    try {
      return (await this.#request(socket, request)) as T;
    } finally {
      socket.destroy();
    }
  }

  /** Sends a streaming request (exec, attach, forward) and resolves with the connection once accepted. */
  async open(request: { op: string; [key: string]: unknown }): Promise<net.Socket> {
    return (await this.stream(request)).socket;
  }

  /** As `open`, with the result sprite-init accepted the request with (an exec's session id and mode). */
  async stream<T>(request: { op: string; [key: string]: unknown }): Promise<{ socket: net.Socket; result: T }> {
    const socket = await this.#connect();
    try {
      return { socket, result: (await this.#request(socket, request)) as T };
    } catch (error) {
      socket.destroy();
      throw error;
    }
  }

  async #request(socket: net.Socket, request: object): Promise<unknown> {
    socket.write(messageFrame(request));
    let reply: Reply;
    try {
      reply = decodeMessage(await readOneFrame(socket)) as Reply;
    } catch (error) {
      throw new VmError('ERR_SPRITE_UNAVAILABLE', `${this.#server} closed the connection: ${(error as Error).message}`, { cause: error });
    }
    if (!reply.ok) throw new VmError(reply.error?.code ?? 'ERR_INIT', reply.error?.message ?? `${this.#server} failed`);
    return reply.result;
  }

  #connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.#path);
      socket.once('connect', () => resolve(socket));
      socket.once('error', (error) => reject(new VmError('ERR_SPRITE_UNAVAILABLE', `cannot reach ${this.#server}: ${error.message}`, { cause: error })));
    });
  }
}
