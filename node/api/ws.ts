import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { CONTROL, decodeControl, frame, readFrames, controlFrame, STREAM } from '../../vm/index.ts';

/**
 * Bridges an exec or attach WebSocket to sprite-init's stream connection: binary messages are
 * stream frames in both directions, text messages are JSON control messages (resize, session).
 * The WebSocket closes after the exit frame; closing the WebSocket closes the stream (which
 * detaches a TTY session and ends a plain exec).
 */
export function bridgeExec(ws: WebSocket, stream: Socket): void {
  readFrames(stream, (payload) => {
    if (payload[0] === CONTROL) {
      ws.send(JSON.stringify(decodeControl(payload)));
      return;
    }
    ws.send(Buffer.from(payload));
    if (payload[0] === STREAM.exit) ws.close(1000, 'exit');
  });
  stream.on('close', () => {
    if (ws.readyState === ws.OPEN) ws.close(1011, 'sprite closed the stream');
  });
  stream.on('error', () => undefined);
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      if (data.length > 0) stream.write(frame(data));
      return;
    }
    try {
      stream.write(controlFrame(JSON.parse(data.toString('utf8'))));
    } catch {
      ws.close(1007, 'control messages must be JSON');
    }
  });
  ws.on('close', () => stream.end());
  ws.on('error', () => stream.destroy());
}

/** Bridges a port-forward WebSocket to a raw byte connection inside the sprite. */
export function bridgeBytes(ws: WebSocket, stream: Socket): void {
  stream.on('data', (data: Buffer) => ws.send(data));
  stream.resume();
  stream.on('close', () => {
    if (ws.readyState === ws.OPEN) ws.close(1000);
  });
  stream.on('error', () => undefined);
  ws.on('message', (data: Buffer) => stream.write(data));
  ws.on('close', () => stream.end());
  ws.on('error', () => stream.destroy());
}
