import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ApiError } from '../errors.ts';
import type { Mesh } from '../../gossip/index.ts';
import type { Logger } from '../logger.ts';
import type { SpriteManager } from '../sprites.ts';
import { tokenValid } from '../tokens.ts';
import { sendError, sendJson } from './http.ts';
import { httpRoutes, wsRoutes, type Route } from './routes.ts';

/** Where the API reports use of a sprite (the idle timer): open until the returned function runs. */
export interface SpriteUse {
  open(name: string): () => void;
}

/** What the API serves. */
export interface ApiInit {
  sprites: SpriteManager;
  /** Calls and streams that use a sprite (exec, console, services...) keep it awake. */
  use: SpriteUse;
  /** Holds the replicated tokens: any token registered in the mesh is accepted. */
  mesh: Mesh;
  /** This peer's admin token. */
  token: string;
  peerId: string;
  version: string;
  logger: Logger;
}

/** The peer's HTTP API on node:http, WebSockets through `ws`. */
export function createApiServer(init: ApiInit): http.Server {
  const authorized = (req: IncomingMessage): boolean => {
    const match = /^Bearer (\S{1,512})$/.exec(req.headers.authorization ?? '');
    // Tokens are compared by their SHA-256 in the replicated table, not as strings.
    return match !== null && tokenValid(init.mesh, match[1]!);
  };
  // Use is recorded before the sprite is woken, so a freeze deciding meanwhile sees it; only known
  // sprites are recorded (ERR_SPRITE_NOT_FOUND otherwise), so the record stays bounded by the mesh.
  const useOf = (name: string): (() => void) => {
    init.sprites.get(name);
    return init.use.open(name);
  };
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  const server = http.createServer((req, res) => {
    void handle(req, res).catch((error: unknown) => {
      const apiError = error instanceof ApiError ? error : undefined;
      if (!apiError || apiError.status >= 500) init.logger.error('request failed', { method: req.method, url: req.url, error: (error as Error).message });
      sendError(res, error);
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://peer');
    if (req.method === 'GET' && url.pathname === '/v1/health') {
      sendJson(res, 200, { ok: true, peer: init.peerId, version: init.version });
      return;
    }
    const { route, params } = match(httpRoutes, req.method ?? 'GET', url.pathname);
    if (!authorized(req)) throw new ApiError('ERR_UNAUTHORIZED', 'missing or wrong bearer token');
    if (params.name !== undefined && (route.uses === true || route.uses?.(url))) res.once('close', useOf(params.name));
    await route.handler({ req, res, params, url, sprites: init.sprites, mesh: init.mesh });
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://peer');
      const { route, params } = match(wsRoutes, 'GET', url.pathname);
      if (!authorized(req)) throw new ApiError('ERR_UNAUTHORIZED', 'missing or wrong bearer token');
      // Every WebSocket route (exec, console, attach, port forward) uses the sprite while it is open.
      if (params.name !== undefined) socket.once('close', useOf(params.name));
      // Open the sprite side first so errors still answer as plain HTTP.
      const connect = await route.open({ params, url, sprites: init.sprites });
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => connect(ws));
    })().catch((error: unknown) => {
      const apiError = error instanceof ApiError ? error : new ApiError('ERR_INTERNAL', (error as Error).message);
      const body = JSON.stringify({ error: { code: apiError.code, message: apiError.message } });
      socket.end(`HTTP/1.1 ${apiError.status} ${http.STATUS_CODES[apiError.status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    });
  });
  return server;
}

function match<R extends { method: string; pattern: RegExp }>(routes: R[], method: string, path: string): { route: R; params: Record<string, string> } {
  let pathMatched = false;
  for (const route of routes) {
    const found = route.pattern.exec(path);
    if (!found) continue;
    pathMatched = true;
    if (route.method !== method) continue;
    const params: Record<string, string> = {};
    for (const [key, value] of Object.entries(found.groups ?? {})) params[key] = decodeURIComponent(value);
    return { route, params };
  }
  if (pathMatched) throw new ApiError('ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
  throw new ApiError('ERR_NOT_FOUND', `no route ${path}`);
}

export type { Route };
