import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { CONTROL, STREAM, controlFrame, decodeControl, readFrames, type ControlClient } from '../../vm/index.ts';
import { toApiError } from './errors.ts';
import { parseExecQuery } from './exec-query.ts';
import { clientControl, flowControlled, writeInput, writeTo } from './ws.ts';

// The SDK's control envelope: text messages with this prefix, JSON after it.
const PREFIX = 'control:';

/** The operation under way on a control channel. */
interface Op {
  tty: boolean;
  stream: Socket | undefined;
  /** Data the client sent before the exec was accepted (the SDK sends stdin EOF at once). */
  pending: Array<{ data: Buffer; isBinary: boolean }>;
}

/**
 * `/v1/sprites/{name}/control`: the SDK's control mode, one WebSocket carrying exec operations one
 * after another. `control:{"type": "op.start", "op": "exec", "args": {cmd, env, dir, tty, rows,
 * cols, stdin}}` starts one; its data then flows as on the exec WebSocket (stream frames, or raw
 * bytes with a TTY; resize and signal as JSON, which the SDK sends as binary messages too); it ends
 * with `control:{"type": "op.complete", "args": {"exitCode"}}`, or `op.error` with `args.error`.
 * Only `exec` is served; other ops answer op.error.
 */
export function controlChannel(ws: WebSocket, control: ControlClient): void {
  let op: Op | undefined;
  const envelope = (type: string, args: object): void => {
    if (ws.readyState === ws.OPEN) ws.send(PREFIX + JSON.stringify({ type, args }));
  };
  const end = (current: Op): void => {
    if (op === current) op = undefined;
  };

  const start = async (message: { op?: unknown; args?: unknown }): Promise<void> => {
    if (op) return envelope('op.error', { error: 'an operation is already running on this connection' });
    if (message.op !== 'exec') return envelope('op.error', { error: `unsupported op ${String(message.op)}; only exec is served` });
    const current: Op = { tty: false, stream: undefined, pending: [] };
    op = current;
    let socket: Socket;
    try {
      const request = parseExecQuery(execUrl(message.args), 'ws');
      current.tty = request.tty;
      ({ socket } = await control.stream({ op: 'exec', ...request }));
    } catch (error) {
      end(current);
      return envelope('op.error', { error: toApiError(error).message });
    }
    if (ws.readyState !== ws.OPEN) {
      socket.destroy();
      return;
    }
    current.stream = socket;
    const send = flowControlled(ws, socket);
    readFrames(socket, (payload) => {
      if (payload[0] === CONTROL) return send(JSON.stringify(decodeControl(payload)));
      if (payload[0] === STREAM.exit) {
        if (!current.tty) send(Buffer.from(payload));
        end(current);
        return envelope('op.complete', { exitCode: payload[1] ?? 1 });
      }
      send(current.tty ? Buffer.from(payload.subarray(1)) : Buffer.from(payload));
    });
    socket.on('error', () => undefined);
    socket.once('close', () => {
      if (op !== current) return;
      end(current);
      envelope('op.error', { error: 'the sprite ended the operation without an exit status' });
    });
    for (const { data, isBinary } of current.pending.splice(0)) input(current, data, isBinary);
  };

  const input = (current: Op, data: Buffer, isBinary: boolean): void => {
    const stream = current.stream;
    if (!stream) {
      current.pending.push({ data, isBinary });
      return;
    }
    // Resize and signal come as JSON, as text or (from the SDK) as binary starting with '{'.
    if (!isBinary || data[0] === 0x7b) {
      const message = clientControl(data);
      if (message) return writeTo(stream, ws, controlFrame(message));
      if (!isBinary) return;
    }
    writeInput(stream, ws, data, current.tty);
  };

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary && data.subarray(0, PREFIX.length).toString() === PREFIX) {
      let message: { type?: unknown; op?: unknown; args?: unknown } | undefined;
      try {
        message = JSON.parse(data.subarray(PREFIX.length).toString('utf8')) as typeof message;
      } catch {
        return;
      }
      if (message?.type === 'op.start') void start(message);
      return;
    }
    if (op) input(op, data, isBinary);
  });
  ws.on('close', () => op?.stream?.end());
}

/** The exec query an op.start's args stand for, so they get the exec WebSocket's validation. */
function execUrl(args: unknown): URL {
  const url = new URL('http://control/');
  const given = (typeof args === 'object' && args !== null ? args : {}) as Record<string, unknown>;
  const list = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []);
  for (const arg of list(given.cmd)) url.searchParams.append('cmd', arg);
  for (const pair of list(given.env)) url.searchParams.append('env', pair);
  for (const key of ['dir', 'tty', 'rows', 'cols', 'stdin'] as const) {
    const value = given[key];
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') url.searchParams.set(key, String(value));
  }
  return url;
}
