import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { PeerError } from '../errors.ts';
import { refuseUpgrade, toApiError, type ApiError } from './errors.ts';
import type { Mesh } from '../../gossip/index.ts';
import type { Logger } from '../../vm/index.ts';
import type { Drain } from '../drain.ts';
import type { LinkTls } from '../../proxy/index.ts';
import { fromPeer, readHop, requestPath, type CreateFlow, type HopKeys, type PeerClient, type PeerTarget, type Placement } from '../placement/index.ts';
import type { ImageManager } from '../images.ts';
import type { SpriteManager } from '../sprites.ts';
import type { OrgQuotas } from '../quotas.ts';
import { callerOfHash, tokenCheck, tokenHash, type Caller, type SpriteRegistry } from '../records/index.ts';
import { OpenByToken } from '../../proxy/index.ts';
import { requireAdmin, sees } from './authz.ts';
import { sendError, sendJson } from './http.ts';
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
  /** Checks the signed hops of requests from other peers (and strips hop headers from clients'). */
  hops: HopKeys;
  /** This peer's link credentials: the link listener's TLS, and which peer a connection's certificate names. */
  link: LinkTls;
  /** Replaces this peer's own admin token (its data dir file and the store) and returns the new one. */
  rotateToken(): Promise<string>;
  /** The orgs' quotas: shown and set by the org routes, asked early by a create. */
  quotas: OrgQuotas;
  peerId: string;
  version: string;
  logger: Logger;
}

/** The API's two listeners: the public one (clients, plain HTTP) and the peer link (other peers, mutual TLS). */
export interface ApiServers {
  server: http.Server;
  /** The link listener, made on the first call (the link credentials exist once the peer caught up with the mesh). */
  link(): https.Server;
}

/**
 * The peer's HTTP API on node:http, WebSockets through `ws`, served on two listeners: the public
 * one, where hop headers are stripped, and the peer link, where every request must carry a hop
 * signed by the member its client certificate names (see node/placement/hops.ts).
 */
export function createApiServer(init: ApiInit): ApiServers {
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
    // `peer` routes were answered by callerFor already: only a peer over its link gets this far.
    if (auth === 'admin') requireAdmin(caller, `${method} ${path} takes one`);
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
    void handle(req, res, undefined).catch((error: unknown) => sendError(res, failed(req, error)));
  });
  let linkServer: https.Server | undefined;
  const link = (): https.Server => {
    if (linkServer) return linkServer;
    const made = https.createServer({ ...init.link.server(), requestTimeout: 0 }, (req, res) => {
      void (async () => handle(req, res, linkPeer(req)))().catch((error: unknown) => sendError(res, failed(req, error)));
    });
    // Renewed credentials (a new link CA) apply to new connections.
    init.link.onChange(() => made.setSecureContext(init.link.server()));
    made.on('tlsClientError', () => undefined);
    made.on('upgrade', upgrade(true));
    linkServer = made;
    return made;
  };

  /** The member a link request's certificate names; ERR_FORBIDDEN when it names none (a peer marked down, or gone). */
  function linkPeer(req: IncomingMessage): string {
    const peer = init.link.peerOf(req.socket);
    if (peer === undefined) throw new PeerError('ERR_FORBIDDEN', 'the peer link takes requests from members of the mesh only');
    return peer;
  }

  /**
   * What every request passes first, on either listener: an origin-form target (absolute-form and
   * `//host` are refused, see relay.ts) and its hop: stripped from a client's request, checked on
   * the link, where a request without a valid one is refused.
   */
  function admit(req: IncomingMessage, peer: string | undefined): URL {
    requestPath(req.url);
    if (!init.hops.admit(req, peer)) throw new PeerError('ERR_FORBIDDEN', `a request on the peer link needs a hop signed by peer ${peer} for ${req.method} ${req.url}, unexpired`);
    return new URL(req.url ?? '/', 'http://peer');
  }

  /** The caller: a peer handing a sprite over is the peer itself (no token); anything else carries the client's token. */
  function callerFor(req: IncomingMessage, auth: Auth): { caller: Caller; hash: string | undefined } {
    if (auth !== 'peer') return authenticate(req);
    // A `peer` route: only another peer over its link, with a hop it signed for this call; every
    // client token (admin included) is refused; a request without a valid token is a 401 as anywhere.
    const hop = readHop(req);
    if (hop?.role === 'adopt') return { caller: { org: 'admin', admin: true, tokenName: `peer-${hop.peer}` }, hash: undefined };
    authenticate(req);
    throw new PeerError('ERR_FORBIDDEN', `${req.method} ${req.url} is a call between peers over the peer link; no client token may make it`);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, peer: string | undefined): Promise<void> {
    const url = admit(req, peer);
    if (req.method === 'GET' && url.pathname === '/v1/health') {
      sendJson(res, 200, { ok: true, peer: init.peerId, version: init.version });
      return;
    }
    const { route, params } = match(routes, req.method ?? 'GET', url.pathname);
    const { caller, hash } = callerFor(req, route.auth);
    authorize(route.auth, caller, route.method, url.pathname, params);
    if (hash !== undefined) res.once('close', open.hold(hash, () => res.destroy()));
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

  const upgrade = (onLink: boolean) => (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => undefined);
    void (async () => {
      const url = admit(req, onLink ? linkPeer(req) : undefined);
      const { route, params } = match(wsRoutes, 'GET', url.pathname);
      const { caller, hash } = callerFor(req, route.auth);
      authorize(route.auth, caller, 'GET', url.pathname, params);
      let ws: WebSocket | undefined;
      // Revoked: this peer's WebSocket says why with a close frame; a relayed one (forwarded to the
      // owner) lets the owner's pass first. The socket goes either way.
      if (hash !== undefined) socket.once('close', open.hold(hash, () => {
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
  };
  server.on('upgrade', upgrade(false));
  server.once('close', () => open.stop());
  return { server, link };
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
