import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ApiError, refuseUpgrade, toApiError } from './errors.ts';
import type { Mesh } from '../../gossip/index.ts';
import type { Logger } from '../../vm/index.ts';
import type { Drain } from '../drain.ts';
import type { Placement } from '../placement.ts';
import type { ImageManager } from '../images.ts';
import type { SpriteManager } from '../sprites.ts';
import { callerOf, type Caller, type SpriteRegistry } from '../records/index.ts';
import { sees } from './authz.ts';
import { forwardRequest, forwardUpgrade, hopRole } from './forward.ts';
import { sendError, sendJson } from './http.ts';
import { httpRoutes, wsRoutes, type EdgeView, type Route } from './routes.ts';
import { imageRoutes } from './images.ts';
import { tenantRoutes } from './tenants.ts';

/** Where the API reports use of a sprite (the idle timer): open until the returned function runs. */
export interface SpriteUse {
  open(name: string): () => void;
}

/** What the API serves. */
export interface ApiInit {
  sprites: SpriteManager;
  /** Base images (built here, listed from the replicated store). */
  images: ImageManager;
  /** Where operations on sprites run: requests for a sprite another peer owns are handed to it. */
  placement: Placement;
  drain: Drain;
  /** Calls and streams that use a sprite (exec, console, services...) keep it awake. */
  use: SpriteUse;
  /** The replicated sprite records. */
  registry: SpriteRegistry;
  /** This peer's edge proxy, as the API shows it. */
  edge: EdgeView;
  /** Holds the replicated tokens and orgs: any token registered in the mesh is accepted on every peer. */
  mesh: Mesh;
  /** This peer's admin token. */
  token: string;
  peerId: string;
  version: string;
  logger: Logger;
}

/** The peer's HTTP API on node:http, WebSockets through `ws`. */
export function createApiServer(init: ApiInit): http.Server {
  const routes = [...httpRoutes, ...tenantRoutes, ...imageRoutes(init.images)];
  /** The caller of a request; ERR_UNAUTHORIZED without a valid token. Read afresh per request, so a revocation counts at once. */
  const authenticate = (req: IncomingMessage): Caller => {
    const match = /^Bearer (\S{1,512})$/.exec(req.headers.authorization ?? '');
    // Tokens are compared by their SHA-256 in the replicated table, not as strings.
    const caller = match === null ? undefined : callerOf(init.mesh.store, match[1]!);
    if (!caller) throw new ApiError('ERR_UNAUTHORIZED', 'missing or wrong bearer token');
    return caller;
  };
  // Use is recorded before the sprite is woken, so a freeze deciding meanwhile sees it; only known
  // sprites are recorded (ERR_SPRITE_NOT_FOUND otherwise), so the record stays bounded by the mesh.
  const useOf = (name: string): (() => void) => {
    init.sprites.get(name);
    return init.use.open(name);
  };
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  /** The one place a failed request becomes an answer, for plain routes and WebSocket upgrades alike. */
  const failed = (req: IncomingMessage, error: unknown): ApiError => {
    const apiError = toApiError(error);
    if (apiError.status >= 500) init.logger.error('request failed', { method: req.method, url: req.url, code: apiError.code, error: apiError.message });
    return apiError;
  };
  const server = http.createServer((req, res) => {
    void handle(req, res).catch((error: unknown) => sendError(res, failed(req, error)));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://peer');
    if (req.method === 'GET' && url.pathname === '/v1/health') {
      sendJson(res, 200, { ok: true, peer: init.peerId, version: init.version });
      return;
    }
    const { route, params } = match(routes, req.method ?? 'GET', url.pathname);
    const caller = authenticate(req);
    scope(init.registry, caller, params);
    const owner = params.name !== undefined && !route.anyPeer ? await ownerElsewhere(req, params.name) : undefined;
    if (owner) return forwardRequest(req, res, owner, 'owner');
    // The owner counts use (the idle timer), once the request is served here.
    if (params.name !== undefined && (route.uses === true || route.uses?.(url))) res.once('close', useOf(params.name));
    await route.handler({ req, res, params, url, sprites: init.sprites, mesh: init.mesh, caller, registry: init.registry, edge: init.edge, placement: init.placement, drain: init.drain });
  }

  /** The owner's API when the named sprite runs on another peer and this request did not come from one. */
  async function ownerElsewhere(req: IncomingMessage, name: string): Promise<string | undefined> {
    if (hopRole(req)) return undefined;
    return (await init.placement.ownerOf(name))?.api;
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://peer');
      const { route, params } = match(wsRoutes, 'GET', url.pathname);
      const caller = authenticate(req);
      scope(init.registry, caller, params);
      const owner = params.name !== undefined ? await ownerElsewhere(req, params.name) : undefined;
      if (owner) return forwardUpgrade(req, socket, head, owner);
      // Every WebSocket route (exec, console, attach, port forward) uses the sprite while it is open.
      if (params.name !== undefined) socket.once('close', useOf(params.name));
      // Open the sprite side first so errors still answer as plain HTTP.
      const connect = await route.open({ params, url, sprites: init.sprites, caller });
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => connect(ws));
    })().catch((error: unknown) => refuseUpgrade(socket, failed(req, error)));
  });
  return server;
}

/**
 * Answers a request about another org's sprite exactly as one about a missing sprite, so a token
 * cannot learn which names other orgs use (only create's ERR_NAME_TAKEN tells: names are mesh-wide).
 */
function scope(registry: SpriteRegistry, caller: Caller, params: Record<string, string>): void {
  if (params.name === undefined) return;
  const record = registry.get(params.name);
  if (record && !sees(caller, record.org)) throw new ApiError('ERR_SPRITE_NOT_FOUND', `no sprite named ${params.name}`);
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
