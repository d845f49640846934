// `sprite proxy`: a local TCP listener whose connections each ride one proxy WebSocket, opened
// with the `{host, port}` handshake of docs/API.md.
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type WebSocket from 'ws';
import type { Client } from './client.ts';
import { seg } from './client.ts';
import { describeError } from './errors.ts';
import { toBuffer } from './exec.ts';

/** Pause reading the local socket while this many bytes wait on the WebSocket. */
const HIGH_WATER = 1024 * 1024;
/** Resume reading once the WebSocket's backlog falls below this. */
const LOW_WATER = 256 * 1024;

/** Options of startProxy. */
export interface ProxyInit {
  /** Sprite to forward to. */
  name: string;
  /** Port inside the sprite. */
  port: number;
  /** Local port; 0 picks a free one. */
  localPort: number;
  /**
   * Local address to listen on.
   * @default '127.0.0.1'
   */
  host?: string;
}

/** A running proxy: where it listens and how to stop it. */
export interface RunningProxy {
  /** The port actually listened on. */
  readonly port: number;
  /** Stops listening and closes every open connection. */
  stop(): Promise<void>;
}

/** Listens locally and forwards each accepted connection; `report` gets one line per failed connection. */
export async function startProxy(
  init: ProxyInit,
  deps: { client: Client; report: (line: string) => void },
): Promise<RunningProxy> {
  const { client, report } = deps;
  const sockets = new Set<Socket>();
  const path = `/v1/sprites/${seg(init.name)}/proxy`;

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Hold incoming bytes in the kernel until the WebSocket is open.
    socket.pause();
    socket.on('error', () => socket.destroy());
    client.socket(path).then(handshake(init.port)).then(
      (ws) => {
        if (socket.destroyed) ws.close();
        else pipe(socket, ws);
      },
      (err: unknown) => {
        report(`connection to port ${init.port} failed: ${describeError(err).message}`);
        socket.destroy();
      },
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(init.localPort, init.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : init.localPort;

  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Sends `{host, port}` on a fresh (paused) proxy WebSocket and resolves with it, paused, once the server says connected. */
function handshake(port: number): (ws: WebSocket) => Promise<WebSocket> {
  return (ws) =>
    new Promise((resolve, reject) => {
      const fail = (message: string): void => {
        ws.close();
        reject(new Error(message));
      };
      ws.once('message', (data, isBinary) => {
        ws.off('close', onClose);
        ws.pause();
        let answer: { status?: unknown; message?: unknown } = {};
        try {
          answer = isBinary ? {} : (JSON.parse(toBuffer(data).toString('utf8')) as typeof answer);
        } catch {
          // Not the handshake's answer: refused below.
        }
        if (answer.status === 'connected') resolve(ws);
        else fail(typeof answer.message === 'string' ? answer.message : 'the proxy refused the connection');
      });
      const onClose = (): void => fail('the proxy closed before connecting');
      ws.once('close', onClose);
      ws.send(JSON.stringify({ host: 'localhost', port }));
      ws.resume();
    });
}

/** Pipes one TCP connection and one (possibly paused) WebSocket both ways, closing each when the other closes. */
export function pipe(socket: Socket, ws: WebSocket): void {
  const blocked = { ws: false };
  socket.on('data', (chunk: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(chunk, { binary: true }, () => {
      if (socket.isPaused() && ws.bufferedAmount < LOW_WATER) socket.resume();
    });
    if (ws.bufferedAmount > HIGH_WATER) socket.pause();
  });
  ws.on('message', (data, isBinary) => {
    if (!isBinary) return;
    if (!socket.write(toBuffer(data)) && !blocked.ws) {
      blocked.ws = true;
      ws.pause();
      socket.once('drain', () => {
        blocked.ws = false;
        ws.resume();
      });
    }
  });
  const closeWs = (): void => {
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close();
  };
  socket.once('end', closeWs);
  socket.once('close', closeWs);
  ws.once('close', () => {
    // end() flushes what the sprite already sent before the FIN.
    if (!socket.destroyed) socket.end();
  });
  socket.resume();
  ws.resume();
}
