import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { PeerError } from '../errors.ts';
import { refuseUpgrade, toApiError, type ApiError } from './errors.ts';
import type { Mesh } from '../../gossip/index.ts';
import type { Logger } from '../../vm/index.ts';
import type { Drain } from '../drain.ts';
import { fromPeer, type CreateFlow, type PeerClient, type PeerTarget, type Placement } from '../placement/index.ts';
import type { ImageManager } from '../images.ts';
import type { SpriteManager } from '../sprites.ts';
import type { OrgQuotas } from '../quotas.ts';
import { callerOfHash, tokenCheck, tokenHash, type Caller, type SpriteRegistry } from '../records/index.ts';
import { requireAdmin, sees } from './authz.ts';
import { sendError, sendJson } from './http.ts';
import { OpenByToken } from './revocation.ts';
import { match, type Auth } from './router.ts';
import { routeTable } from './routes/index.ts';
import type { EdgeView } from './routes/sprites.ts';

export type { EdgeView };

/** The largest WebSocket message a client may send (a stdin write of the SDK is one message). */
export const MAX_WS_MESSAGE = 32 * 1024 * 1024;

/** How a WebSocket closed for a revoked token ends: policy violation. */
export const REVOKED_CLOSE = 1008;
// After its close frame, a revoked WebSocket's socket goes in this long whatever the client does;
// a forwarded one's relay waits as long for the owner's close frame to pass first.
const CLOSE_GRACE_MS = 1000;

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
  placement: Pick<Placement, 'ownerOf'>;
  /** The create protocol: a new name goes to its arbiter, the sprite to the peer placement chooses. */
  creates: CreateFlow;
  /** Hands requests to other peers (a sprite's owner, a peer asked to drain). */
  peers: PeerClient;
  drain: Drain;
  /** Calls and streams that use a sprite (exec, console, services...) keep it awake. */
  use: SpriteUse;
  /** The replicated sprite records. */
  registry: SpriteRegistry;
  /** This peer's edge proxy, as the API shows it. */
  edge: EdgeView;
  /** Holds the replicated tokens and orgs: any token registered in the mesh is accepted on every peer. */
  mesh: Mesh;
  /** The orgs' quotas: shown and set by the org routes, asked early by a create. */
  quotas: OrgQuotas;
  /** This peer's admin token. */
  token: string;
  peerId: string;
  version: string;
  logger: Logger;
}

/** The peer's HTTP API on node:http, WebSockets through `ws`. */
export function createApiServer(init: ApiInit): http.Server {
  const { sprites, mesh, registry, peers } = init;
  const { routes, wsRoutes } = routeTable(init);
  // What each token has open, closed when a revocation of it arrives.
  const open = new OpenByToken(tokenCheck(mesh.store));
  /**
   * The caller of a request and its token's hash; ERR_UNAUTHORIZED without a valid token. Read afresh
   * per request, so a revocation counts at once (and `open` closes what is under way).
   */
  const authenticate = (req: IncomingMessage): { caller: Caller; hash: string } => {
    const match = /^Bearer (\S{1,512})$/.exec(req.headers.authorization ?? '');
    // Tokens are compared by their SHA-256 in the replicated table, not as strings.
    const hash = match === null ? undefined : tokenHash(match[1]!);
    const caller = hash === undefined ? undefined : callerOfHash(mesh.store, hash);
    if (!caller || !hash) throw new PeerError('ERR_UNAUTHORIZED', 'missing or wrong bearer token');
    return { caller, hash };
  };
  /** The route's rule (router.ts `Auth`), before anything is forwarded or handled. */
  const authorize = (auth: Auth, caller: Caller, method: string, path: string, params: Record<string, string>): void => {
    // `peer`: peers call with their own admin token; links between peers will name the caller as a peer.
    if (auth === 'admin' || auth === 'peer') requireAdmin(caller, `${method} ${path} takes one`);
    scope(registry, caller, params);
  };
  // Use is recorded before the sprite is woken, so a freeze deciding meanwhile sees it; only known
  // sprites are recorded (ERR_SPRITE_NOT_FOUND otherwise), so the record stays bounded by the mesh.
  const useOf = (name: string): (() => void) => {
    sprites.get(name);
    return init.use.open(name);
  };
  // A client's one message is buffered whole: SDKs send a stdin write as one message.
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE });
  /** The one place a failed request becomes an answer, for plain routes and WebSocket upgrades alike. */
  const failed = (req: IncomingMessage, error: unknown): ApiError => {
    const apiError = toApiError(error);
    if (apiError.status >= 500) init.logger.error('request failed', { method: req.method, url: req.url, code: apiError.code, error: apiError.message });
    return apiError;
  };
  // No limit on a whole request (Node's default is 5 minutes): a file upload streams for as long as it
  // takes; the headers still have to arrive within headersTimeout.
  const server = http.createServer({ requestTimeout: 0 }, (req, res) => {
    void handle(req, res).catch((error: unknown) => sendError(res, failed(req, error)));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://peer');
    if (req.method === 'GET' && url.pathname === '/v1/health') {
      sendJson(res, 200, { ok: true, peer: init.peerId, version: init.version });
      return;
    }
    const { route, params } = match(routes, req.method ?? 'GET', url.pathname);
    const { caller, hash } = authenticate(req);
    authorize(route.auth, caller, route.method, url.pathname, params);
    res.once('close', open.hold(hash, () => res.destroy()));
    const owner = params.name !== undefined && !route.anyPeer ? await ownerElsewhere(req, params.name) : undefined;
    if (owner) return peers.forward(owner, req, res);
    // The owner counts use (the idle timer), once the request is served here.
    if (params.name !== undefined && (route.uses === true || route.uses?.(url))) res.once('close', useOf(params.name));
    await route.handler({ req, res, params, url, caller });
  }

  /** The owner's API when the named sprite runs on another peer and this request did not come from one. */
  async function ownerElsewhere(req: IncomingMessage, name: string): Promise<PeerTarget | undefined> {
    if (fromPeer(req)) return undefined;
    return init.placement.ownerOf(name);
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://peer');
      const { route, params } = match(wsRoutes, 'GET', url.pathname);
      const { caller, hash } = authenticate(req);
      authorize(route.auth, caller, 'GET', url.pathname, params);
      let ws: WebSocket | undefined;
      // Revoked: this peer's WebSocket says why with a close frame; a relayed one (forwarded to the
      // owner) lets the owner's pass first. The socket goes either way.
      socket.once('close', open.hold(hash, () => {
        if (ws && ws.readyState === ws.OPEN) ws.close(REVOKED_CLOSE, 'token revoked');
        setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
      }));
      const owner = params.name !== undefined ? await ownerElsewhere(req, params.name) : undefined;
      if (owner) return peers.forwardUpgrade(owner, req, socket, head);
      // Every WebSocket route (exec, console, attach, port forward) uses the sprite while it is open.
      if (params.name !== undefined) socket.once('close', useOf(params.name));
      // Open the sprite side first so errors still answer as plain HTTP.
      const connect = await route.open({ params, url, caller });
      wss.handleUpgrade(req, socket, head, (accepted: WebSocket) => {
        ws = accepted;
        connect(accepted);
      });
    })().catch((error: unknown) => refuseUpgrade(socket, failed(req, error)));
  });
  server.once('close', () => open.stop());
  return server;
}

/**
 * Answers a request about another org's sprite exactly as one about a missing sprite, so a token
 * cannot learn which names other orgs use (only create's ERR_NAME_TAKEN tells: names are mesh-wide).
 */
function scope(registry: SpriteRegistry, caller: Caller, params: Record<string, string>): void {
  if (params.name === undefined) return;
  const record = registry.get(params.name);
  if (record && !sees(caller, record.org)) throw new PeerError('ERR_SPRITE_NOT_FOUND', `no sprite named ${params.name}`);
}
