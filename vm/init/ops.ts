import type net from 'node:net';
import { messageFrame } from '../frames.ts';

/** A request on the control socket. */
export type Request = { op: string; [key: string]: unknown };

/** A control op: its result is the reply, or STREAMING when it keeps the connection. */
export type Handler = (request: Request, socket: net.Socket) => Promise<unknown> | unknown;

/** What a handler returns when it keeps the connection for a stream. */
export const STREAMING = Symbol('streaming');

/** Accepts a streaming op: writes its `{ok: true, result}` reply, after which the stream follows. */
export function accept(socket: net.Socket, result: unknown = null): typeof STREAMING {
  socket.write(messageFrame({ ok: true, result }));
  return STREAMING;
}
