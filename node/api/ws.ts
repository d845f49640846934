import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { CONTROL, STREAM, decodeControl, frame, readFrames, controlFrame, streamFrame } from '../../vm/index.ts';

// Above this many bytes queued for the client, stop reading from the sprite until it drains.
const HIGH_WATER = 1024 * 1024;
// Client input is cut into frames of at most this many bytes (sprite-init refuses frames over 4 MiB).
const INPUT_CHUNK = 1024 * 1024;

/**
 * Bridges an exec or attach WebSocket to sprite-init's stream connection, in the SDK's framing.
 * Without a TTY, binary messages are stream frames both ways (a stream id byte, then data); with a
 * TTY they are raw terminal bytes, and the exit comes as a text `{"type": "exit", "exit_code"}`
 * followed by a close (1000 for status 0, 4000 + status otherwise). Text messages are JSON:
 * session_info and port events from the server; resize and signal from the client. Closing the
 * WebSocket closes the stream, which detaches the session.
 */
export function bridgeExec(ws: WebSocket, stream: Socket, tty: boolean): void {
  const send = flowControlled(ws, stream);
  readFrames(stream, (payload) => {
    if (payload[0] === CONTROL) {
      send(JSON.stringify(decodeControl(payload)));
      return;
    }
    if (payload[0] === STREAM.exit) {
      const status = payload[1] ?? 1;
      if (tty) {
        send(JSON.stringify({ type: 'exit', exit_code: status }));
        ws.close(status === 0 ? 1000 : 4000 + status, `exit ${status}`);
      } else {
        send(Buffer.from(payload));
        ws.close(1000, `exit ${status}`);
      }
      return;
    }
    send(tty ? Buffer.from(payload.subarray(1)) : Buffer.from(payload));
  });
  closeTogether(ws, stream);
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      const message = clientControl(data);
      if (message) writeTo(stream, ws, controlFrame(message));
      return;
    }
    writeInput(stream, ws, data, tty);
  });
}

/** Passes a client's binary message to sprite-init: a stream frame as it is, or raw terminal bytes as stdin frames. */
export function writeInput(stream: Socket, ws: WebSocket, data: Buffer, tty: boolean): void {
  if (!tty) {
    // Only the client's own stream ids pass: stdin with data, and stdin EOF.
    if (data[0] === STREAM.stdinEof) writeTo(stream, ws, frame(data));
    else if (data[0] === STREAM.stdin) writeStdin(stream, ws, data.subarray(1));
    return;
  }
  writeStdin(stream, ws, data);
}

/** Stdin bytes as frames sprite-init takes: a client's message may be larger than one frame. */
function writeStdin(stream: Socket, ws: WebSocket, data: Buffer): void {
  for (let at = 0; at < data.length; at += INPUT_CHUNK) writeTo(stream, ws, streamFrame(STREAM.stdin, data.subarray(at, at + INPUT_CHUNK)));
}

/** The control messages a client may send, with only their known fields; undefined for anything else. */
export function clientControl(data: Buffer): object | undefined {
  let message: { type?: unknown; cols?: unknown; rows?: unknown; signal?: unknown };
  try {
    message = JSON.parse(data.toString('utf8')) as typeof message;
  } catch {
    return undefined;
  }
  if (message?.type === 'resize') return { type: 'resize', cols: message.cols, rows: message.rows };
  if (message?.type === 'signal' && typeof message.signal === 'string') return { type: 'signal', signal: message.signal };
  return undefined;
}

/** Sends each control message of sprite-init's stream as a JSON text message (port events). */
export function bridgeEvents(ws: WebSocket, stream: Socket): void {
  const send = flowControlled(ws, stream);
  readFrames(stream, (payload) => {
    if (payload[0] !== CONTROL) return;
    send(JSON.stringify(decodeControl(payload)));
  });
  closeTogether(ws, stream);
}

/** Bridges a port-forward WebSocket to a raw byte connection inside the sprite. */
export function bridgeBytes(ws: WebSocket, stream: Socket): void {
  const send = flowControlled(ws, stream);
  stream.on('data', (data: Buffer) => send(data));
  stream.resume();
  closeTogether(ws, stream);
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) writeTo(stream, ws, data);
  });
}

/** Sends to the client, pausing the sprite side while the client is behind. */
export function flowControlled(ws: WebSocket, stream: Socket): (data: Buffer | string) => void {
  return (data) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(data, () => {
      if (stream.isPaused() && ws.bufferedAmount < HIGH_WATER / 2) stream.resume();
    });
    if (ws.bufferedAmount > HIGH_WATER) stream.pause();
  };
}

/** Writes to the sprite, pausing the client while the sprite side is behind. */
export function writeTo(stream: Socket, ws: WebSocket, data: Buffer): void {
  if (!stream.write(data)) {
    ws.pause();
    stream.once('drain', () => ws.resume());
  }
}

function closeTogether(ws: WebSocket, stream: Socket): void {
  stream.on('close', () => {
    if (ws.readyState === ws.OPEN) ws.close(1000);
  });
  stream.on('error', () => undefined);
  ws.on('close', () => stream.end());
  ws.on('error', () => stream.destroy());
}
