import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { CONTROL, decodeControl, frame, readFrames, controlFrame, STREAM } from '../../vm/index.ts';

// Above this many bytes queued for the client, stop reading from the sprite until it drains.
const HIGH_WATER = 1024 * 1024;

/**
 * Bridges an exec or attach WebSocket to sprite-init's stream connection: binary messages are
 * stream frames in both directions, text messages are JSON control messages (resize, session).
 * The WebSocket closes after the exit frame; closing the WebSocket closes the stream (which
 * detaches a TTY session and ends a plain exec).
 */
export function bridgeExec(ws: WebSocket, stream: Socket): void {
  const send = flowControlled(ws, stream);
  readFrames(stream, (payload) => {
    if (payload[0] === CONTROL) {
      send(JSON.stringify(decodeControl(payload)));
      return;
    }
    send(Buffer.from(payload));
    if (payload[0] === STREAM.exit) ws.close(1000, 'exit');
  });
  closeTogether(ws, stream);
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      if (data.length > 0) writeTo(stream, ws, frame(data));
      return;
    }
    try {
      writeTo(stream, ws, controlFrame(JSON.parse(data.toString('utf8'))));
    } catch {
      ws.close(1007, 'control messages must be JSON');
    }
  });
}

/** Bridges a port-forward WebSocket to a raw byte connection inside the sprite. */
export function bridgeBytes(ws: WebSocket, stream: Socket): void {
  const send = flowControlled(ws, stream);
  stream.on('data', (data: Buffer) => send(data));
  stream.resume();
  closeTogether(ws, stream);
  ws.on('message', (data: Buffer) => writeTo(stream, ws, data));
}

/** Sends to the client, pausing the sprite side while the client is behind. */
function flowControlled(ws: WebSocket, stream: Socket): (data: Buffer | string) => void {
  return (data) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(data, () => {
      if (stream.isPaused() && ws.bufferedAmount < HIGH_WATER / 2) stream.resume();
    });
    if (ws.bufferedAmount > HIGH_WATER) stream.pause();
  };
}

/** Writes to the sprite, pausing the client while the sprite side is behind. */
function writeTo(stream: Socket, ws: WebSocket, data: Buffer): void {
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
