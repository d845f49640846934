import type { WebSocket } from 'ws';
import { isIP } from 'node:net';
import type { SpriteManager } from '../../sprites.ts';
import { controlChannel } from '../control-channel.ts';
import { parseExecQuery } from '../exec-query.ts';
import { NAME, type WsRoute } from '../router.ts';
import { bridgeBytes, bridgeEvents, bridgeExec } from '../ws.ts';
import type { ControlClient } from '../../../vm/index.ts';

/** What the WebSocket routes work on: the sprite's control connection, woken if it sleeps. */
export type ExecSprites = Pick<SpriteManager, 'awake'>;

/** How sprite-init accepts an exec or attach: the session and whether it has a terminal. */
interface Accepted {
  id: string;
  tty: boolean;
}

// A proxy client that sends no {host, port} in this long is dropped.
const HANDSHAKE_MS = 10_000;

/** WebSocket routes into a sprite: exec, attaching to a session, port events, control mode and the TCP proxy. */
export function execRoutes(sprites: ExecSprites): WsRoute[] {
  const attach = async (name: string, id: string): Promise<(ws: WebSocket) => void> => {
    const { socket, result } = await (await sprites.awake(name)).stream<Accepted>({ op: 'attach', id });
    return (ws) => bridgeExec(ws, socket, result.tty);
  };
  return [
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/exec$`),
      open: async ({ params, url }) => {
        // `id` in the query attaches as /exec/{id} does.
        const id = url.searchParams.get('id');
        if (id) return attach(params.name!, id);
        const request = parseExecQuery(url, 'ws');
        const { socket, result } = await (await sprites.awake(params.name!)).stream<Accepted>({ op: 'exec', ...request });
        return (ws) => bridgeExec(ws, socket, result.tty);
      },
    },
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/exec/(?<id>[^/]+)$`),
      open: ({ params }) => attach(params.name!, params.id!),
    },
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/ports/watch$`),
      open: async ({ params }) => {
        const socket = await (await sprites.awake(params.name!)).open({ op: 'ports.watch' });
        return (ws) => bridgeEvents(ws, socket);
      },
    },
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/control$`),
      open: async ({ params }) => {
        const control = await sprites.awake(params.name!);
        return (ws) => controlChannel(ws, control);
      },
    },
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/proxy$`),
      open: async ({ params }) => {
        const control = await sprites.awake(params.name!);
        return (ws) => proxyHandshake(ws, control);
      },
    },
  ];
}

/**
 * The SDK's proxy handshake: the client's first message is `{"host", "port"}`; once that port
 * answers inside the sprite the server says `{"status": "connected", "target"}` and the
 * WebSocket carries the connection's raw bytes as binary messages. A failure answers
 * `{"status": "error", "target", "message"}` and closes.
 */
function proxyHandshake(ws: WebSocket, control: ControlClient): void {
  const timer = setTimeout(() => ws.close(1008, 'no proxy handshake'), HANDSHAKE_MS);
  ws.once('close', () => clearTimeout(timer));
  ws.once('message', (data: Buffer) => {
    clearTimeout(timer);
    // Nothing is read from the client until the connection inside is up.
    ws.pause();
    const target = parseTarget(data);
    const fail = (where: string, message: string): void => {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(JSON.stringify({ status: 'error', target: where, message }));
      ws.close(1011, 'proxy failed');
    };
    if (typeof target === 'string') {
      fail('', target);
      return;
    }
    const where = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
    control.open({ op: 'forward', host: target.host, port: target.port }).then(
      (stream) => {
        if (ws.readyState !== ws.OPEN) {
          stream.destroy();
          return;
        }
        ws.send(JSON.stringify({ status: 'connected', target: where }));
        bridgeBytes(ws, stream);
        ws.resume();
      },
      (error: unknown) => fail(where, (error as Error).message),
    );
  });
}

/**
 * The handshake's target, or why it is refused. The host must be `localhost` or an IP address:
 * the connection is made from the sprite's own network namespace, so it reaches what the sprite
 * reaches; names other than localhost would be resolved with the host's resolver, so they are refused.
 */
function parseTarget(data: Buffer): { host: string; port: number } | string {
  let message: { host?: unknown; port?: unknown };
  try {
    message = JSON.parse(data.toString('utf8')) as typeof message;
  } catch {
    return 'the first message must be JSON {"host", "port"}';
  }
  const host = message?.host === undefined || message.host === '' ? 'localhost' : message.host;
  const port = message?.port;
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) return 'port must be 1-65535';
  if (typeof host !== 'string' || (host !== 'localhost' && isIP(host) === 0)) return 'host must be localhost or an IP address inside the sprite';
  return { host, port: port as number };
}
