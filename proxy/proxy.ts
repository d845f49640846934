import http, { type IncomingMessage } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { spritesTable } from '../gossip/index.ts';
import { Activity, type SpriteActivity } from './activity.ts';
import { authorized, cachedTokenCheck, RESERVED_PREFIX, serveReserved, stripCredentials, type TokenCheck } from './auth.ts';
import { ProxyError, type ProxyErrorCode } from './errors.ts';
import type { Forwarder, ForwarderStats, ForwardTarget } from './forward.ts';
import { setForwarded, stripHopByHop } from './headers.ts';
import { HOP_HEADER, HopSigner, type Hop } from './hop.ts';
import { PROXY_DEFAULTS } from './defaults.ts';
import { spriteFromHost } from './host.ts';
import type { ProxyLogger } from './logger.ts';
import { sendErrorOnSocket, sendErrorPage, type AnyResponse } from './pages.ts';
import { RouteTable, type ProxyAddress, type ProxyMesh, type Route } from './routes.ts';
import { CertSource, type CertMesh } from './tls.ts';
import { createUndiciForwarder } from './undici-forward.ts';
import { WAKE_DEFAULTS, Waker, waitForHttp, type WakeInit, type WakeStats } from './wake.ts';

/** A listen address; port 0 picks a free port. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** Options of the edge proxy; every limit has a default in PROXY_DEFAULTS. */
export interface ProxyInit {
  /** Plain HTTP listener (also what other peers forward to); null for none. @default 127.0.0.1:7480 */
  http?: ListenAddress | null;
  /** HTTPS listener (HTTP/2 with HTTP/1.1 fallback); null for none. @default 127.0.0.1:7443 */
  https?: ListenAddress | null;
  /** Sprite URLs are `NAME.<domain>`. @default sprites.localhost */
  domain?: string;
  /** Certificate and key files for `*.<domain>`; without them the mesh CA's certificate is served. */
  tlsFiles?: { cert: string; key: string };
  /** A peer joining a mesh waits this long for the mesh's certificate before making one. @default 0 */
  certWaitMs?: number;
  /** Lifetime of a mesh certificate this peer makes (at first start or renewing with a third left). @default 825 days */
  certLifetimeMs?: number;
  /** Secret shared by the mesh's peers (derived from the swarm key) that signs hop headers. */
  hopSecret: string | Buffer;
  /** Limits of waiting for sleeping sprites. */
  wake?: WakeInit;
  /** Largest request head accepted; larger gets 431. @default 16384 */
  maxHeaderBytes?: number;
  /** Time a client has to send a request's headers (and a TLS handshake); then 408. @default 10000 */
  headersTimeoutMs?: number;
  /** A client connection that carries nothing for this long is closed. @default 120000 */
  clientIdleMs?: number;
  /** An idle keep-alive client connection is closed after this long. @default 5000 */
  keepAliveTimeoutMs?: number;
  /** An upstream (sprite or owner peer) that sends nothing for this long gets the request a 504. @default 120000 */
  upstreamIdleMs?: number;
  /** Time allowed to connect to an upstream. @default 5000 */
  connectTimeoutMs?: number;
  /**
   * Called when a request's sprite lives on a peer the failure detector marks down: moves the
   * sprite to a live peer (its record changes), after which the request is routed again. Without
   * it, or when it throws, the request gets 503 ERR_PROXY_OWNER_DOWN with the reason (the thrown
   * error's message). Concurrent requests for one sprite share one call.
   */
  rehome?(name: string): Promise<void>;
}

/** The sprites this peer runs, as the proxy needs them. */
export interface LocalSprites {
  /** Host path of the HTTP port socket of a sprite running on this peer; undefined when it is not running here. */
  httpSocket(name: string): string | undefined;
  /**
   * Wakes a sleeping (warm or cold) or stopped sprite this peer owns; resolves once it runs (its
   * services are starting), with 'resumed' when it only thawed and its services already listen.
   */
  start(name: string): Promise<void | 'resumed'>;
  /** Whether one of the sprite's services claims the HTTP port, so a wake waits until it answers. */
  servesHttp(name: string): Promise<boolean>;
}

/** What the proxy is built from. */
export interface ProxyComponents {
  mesh: ProxyMesh & CertMesh;
  sprites: LocalSprites;
  tokens: TokenCheck;
  logger: ProxyLogger;
  /** How requests move; undici pools (http-proxy-3 for WebSockets) unless given. */
  forwarder?: Forwarder;
}

/** Counters of a running proxy. */
export interface ProxyStats {
  requests: number;
  webSockets: number;
  /** Client connections open now (HTTP and HTTPS). */
  connections: number;
  /** Error answers by code, since start. */
  errors: Partial<Record<ProxyErrorCode, number>>;
  wake: WakeStats;
  forwarder: ForwarderStats;
}

/** The edge proxy of one peer. */
export interface EdgeProxy {
  /** Loads the certificate, starts following the mesh and listens; resolves with the bound addresses. */
  start(): Promise<ProxyAddress>;
  /** Stops listening, cuts every open connection and stops following the mesh; safe to call twice. */
  stop(): Promise<void>;
  /** The bound addresses, once started. */
  address(): ProxyAddress | undefined;
  /** A sprite's last-active time and open WebSockets as this proxy saw them (the idle timer reads this). */
  activity(name: string): SpriteActivity | undefined;
  /** Every sprite's activity seen since start. */
  activities(): Map<string, SpriteActivity>;
  /** The mesh CA in PEM, or null when the certificate comes from files (or HTTPS is off). */
  ca(): string | null;
  stats(): ProxyStats;
}

type Proto = 'http' | 'https';

/** Builds the edge proxy: HTTP and HTTPS listeners that route `NAME.<domain>` to the sprite's owner. */
export function createProxy(init: ProxyInit, components: ProxyComponents): EdgeProxy {
  const domain = init.domain ?? PROXY_DEFAULTS.domain;
  const limits = { ...PROXY_DEFAULTS, ...definedOnly(init) };
  const { mesh, sprites, logger } = components;
  const tokens = cachedTokenCheck(components.tokens);
  const forwarder = components.forwarder ?? createUndiciForwarder({ upstreamIdleMs: limits.upstreamIdleMs, connectTimeoutMs: limits.connectTimeoutMs });
  const routes = new RouteTable(mesh);
  const activity = new Activity();
  const hops = new HopSigner(init.hopSecret, mesh.peerId);
  /** Resolves once a sprite that just started serves HTTP (at once when no service claims its port), or at `deadline`. */
  const ready = async (name: string, deadline: number): Promise<void> => {
    if (!(await sprites.servesHttp(name).catch(() => false))) return;
    const socket = sprites.httpSocket(name);
    if (socket) await waitForHttp(socket, deadline);
  };
  const waker = new Waker({ start: (name) => sprites.start(name), ready }, init.wake);
  const certs = init.https === null ? undefined : new CertSource({ domain, files: init.tlsFiles, waitMs: limits.certWaitMs, lifetimeMs: init.certLifetimeMs }, { mesh, logger });
  const connections = new Set<Socket>();
  // Socket paths of running local sprites: asking the sprite manager costs a store read per request.
  // Any change of the sprite's row (stop, crash, start, destroy) drops the entry.
  const sockets = new Map<string, string>();
  const errors: Partial<Record<ProxyErrorCode, number>> = {};
  const logged = new Map<string, number>();
  const rehoming = new Map<string, Promise<void>>();
  let requests = 0;
  let webSockets = 0;
  let httpServer: http.Server | undefined;
  let httpsServer: http2.Http2SecureServer | undefined;
  let address: ProxyAddress | undefined;
  let unsubscribeSprites: (() => void) | undefined;
  let stopping: Promise<void> | undefined;

  /** Counts an error, logs server-side faults (at most one line per code per 10 s), and returns it. */
  const record = (error: ProxyError, fields: Record<string, unknown>): ProxyError => {
    errors[error.code] = (errors[error.code] ?? 0) + 1;
    if (error.status >= 502) {
      const now = performance.now();
      if (now - (logged.get(error.code) ?? -Infinity) > 10_000) {
        logged.set(error.code, now);
        logger.warn('proxy error', { code: error.code, error: error.message, ...fields });
      }
    }
    return error;
  };

  /** The checks every request passes, web or WebSocket: host, hop, route, auth, activity. */
  const admit = (req: IncomingMessage | Http2ServerRequest, proto: Proto, rehomed: boolean): { name: string; route: Route; hop: Hop | undefined } => {
    const headers = req.headers;
    let hop: Hop | undefined;
    if (headers[HOP_HEADER] !== undefined) {
      hop = hops.verify(headers[HOP_HEADER]);
      if (!hop) throw new ProxyError('ERR_PROXY_BAD_HOP', 'the request carries a hop header that no peer of this mesh signed');
    }
    const host = (headers[':authority'] as string | undefined) ?? headers.host;
    const name = hop?.sprite ?? spriteFromHost(host, domain);
    let route: Route;
    try {
      route = routes.resolve(name);
    } catch (error) {
      // Only the peer the client reached re-homes: a forwarded request's peer already tried.
      if (init.rehome && !hop && !rehomed && routes.ownerDown(name)) throw new RehomeNeeded(name, error as ProxyError);
      throw error;
    }
    if (hop && route.kind === 'remote') {
      throw new ProxyError('ERR_PROXY_LOOP', `peer ${hop.peer} forwarded a request for ${name} here, but this peer sees it on peer ${route.owner}`);
    }
    if (!authorized(route.sprite, headers, tokens)) {
      throw new ProxyError('ERR_PROXY_UNAUTHORIZED', `sprite ${name} needs an API token of its org: send Authorization: Bearer TOKEN, or sign in at ${RESERVED_PREFIX}login?token=TOKEN`);
    }
    if (!hop) setForwarded(headers, { address: req.socket?.remoteAddress, proto, host: host ?? '' });
    return { name, route, hop };
  };

  /**
   * Rewrites the headers for the upstream and returns it: the owner's proxy (with a signed hop
   * header), or this peer's sprite socket without the proxy's credentials; undefined when the
   * local sprite is not running (the caller wakes it).
   */
  const prepare = (name: string, route: Route, headers: IncomingMessage['headers']): ForwardTarget | undefined => {
    if (route.kind === 'remote') {
      headers[HOP_HEADER] = hops.header(name);
      return route.target;
    }
    delete headers[HOP_HEADER];
    stripCredentials(route.sprite.url_auth, headers, tokens);
    let socketPath = route.sprite.state === 'running' ? sockets.get(name) : undefined;
    if (socketPath === undefined) {
      socketPath = sprites.httpSocket(name);
      if (socketPath !== undefined && route.sprite.state === 'running') sockets.set(name, socketPath);
    }
    return socketPath === undefined ? undefined : { socketPath };
  };

  /** Wakes a local sprite that is not running (sleeping or stopped; a failed sprite needs a person). */
  const wake = async (name: string, route: Route, signal: AbortSignal): Promise<ForwardTarget> => {
    if (route.sprite.state === 'failed') {
      throw new ProxyError('ERR_PROXY_SPRITE_FAILED', `sprite ${name} has failed${route.sprite.reason ? ` (${route.sprite.reason})` : ''}; \`sprite start ${name}\` restarts it`, { retryAfter: 30 });
    }
    await waker.wait(name, signal);
    const socketPath = sprites.httpSocket(name);
    if (socketPath === undefined) throw new ProxyError('ERR_PROXY_WAKE_FAILED', `sprite ${name} stopped again while waking`, { retryAfter: 5 });
    return { socketPath };
  };

  /** Runs the rehome hook once per sprite at a time; its failure becomes the request's 503 with its reason. */
  const rehome = (needed: RehomeNeeded): Promise<void> => {
    let running = rehoming.get(needed.sprite);
    if (!running) {
      // Taken over, the sprite starts here: hold the request until its services listen, like a wake.
      const deadline = performance.now() + (init.wake?.waitMs ?? WAKE_DEFAULTS.waitMs);
      running = Promise.resolve()
        .then(() => init.rehome!(needed.sprite))
        .then(() => ready(needed.sprite, deadline))
        .finally(() => rehoming.delete(needed.sprite));
      rehoming.set(needed.sprite, running);
    }
    return running.catch((error: unknown) => {
      throw new ProxyError('ERR_PROXY_OWNER_DOWN', (error as Error)?.message ?? String(error), { cause: error, retryAfter: needed.down.retryAfter });
    });
  };

  /** Maps a forwarding failure to the answer the client gets. */
  const upstreamError = (error: Error & { code?: string }, name: string, route: Route): ProxyError => {
    const code = error.code ?? '';
    if (code === 'ERR_UPSTREAM_IDLE') return new ProxyError('ERR_PROXY_UPSTREAM_TIMEOUT', route.kind === 'remote' ? `peer ${route.owner} sent nothing for too long for sprite ${name}` : `sprite ${name} sent nothing for too long`, { cause: error });
    if (route.kind === 'remote') {
      if (['ECONNREFUSED', 'ECONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) {
        return new ProxyError('ERR_PROXY_OWNER_DOWN', `sprite ${name} runs on peer ${route.owner}, whose proxy at ${route.target.host}:${route.target.port} refused the connection (${code})`, { cause: error, retryAfter: 5 });
      }
      return new ProxyError('ERR_PROXY_UPSTREAM', `the connection to peer ${route.owner} (which runs ${name}) broke: ${error.message}`, { cause: error });
    }
    sockets.delete(name);
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return new ProxyError('ERR_PROXY_UPSTREAM', `sprite ${name} is not accepting connections on its HTTP socket`, { cause: error, retryAfter: 2 });
    return new ProxyError('ERR_PROXY_UPSTREAM', `nothing answered on port ${route.sprite.http_port} in sprite ${name} (is a service listening there?)`, { cause: error });
  };

  const onRequest = (req: IncomingMessage | Http2ServerRequest, res: AnyResponse, proto: Proto, rehomed = false): void => {
    if (!rehomed) requests += 1;
    let name = '';
    let route: Route | undefined;
    const fail = (error: unknown): void => {
      const proxyError = error instanceof ProxyError
        ? error
        : route && error instanceof Error ? upstreamError(error, name, route) : new ProxyError('ERR_PROXY_UPSTREAM', (error as Error)?.message ?? String(error));
      record(proxyError, { sprite: name || null, path: req.url });
      if (res.destroyed || res.writableEnded || req.socket?.destroyed) return;
      sendErrorPage(req.headers, res, proxyError);
    };
    try {
      const url = req.url ?? '/';
      if (url.startsWith(RESERVED_PREFIX) && req.headers[HOP_HEADER] === undefined) {
        // Login and logout belong to the URL, not to the sprite: any peer serves them.
        spriteFromHost((req.headers[':authority'] as string | undefined) ?? req.headers.host, domain);
        if (serveReserved(url, res, tokens, proto === 'https')) return;
        throw new ProxyError('ERR_PROXY_SPRITE_NOT_FOUND', `${RESERVED_PREFIX} paths belong to the proxy; this one does not exist`);
      }
      const admitted = admit(req, proto, rehomed);
      name = admitted.name;
      const admittedRoute = admitted.route;
      route = admittedRoute;
      // Open until the response ends: a long stream or upload keeps its sprite awake.
      res.once('close', activity.openRequest(name));
      stripHopByHop(req.headers);
      const forward = (to: ForwardTarget): void => forwarder.web(req as IncomingMessage, res, to, (error) => fail(upstreamError(error, name, admittedRoute)));
      // The common cases (a running local sprite, a remote owner) stay synchronous: no promise per request.
      const to = prepare(name, admittedRoute, req.headers);
      if (to) {
        forward(to);
        return;
      }
      const controller = new AbortController();
      res.once('close', () => controller.abort(new Error('the client went away')));
      wake(name, admittedRoute, controller.signal).then(forward, fail);
    } catch (error) {
      if (error instanceof RehomeNeeded) {
        name = error.sprite;
        rehome(error).then(() => {
          if (!res.destroyed) onRequest(req, res, proto, true);
        }, fail);
        return;
      }
      fail(error);
    }
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer, proto: Proto, rehomed = false): void => {
    if (!rehomed) {
      requests += 1;
      socket.on('error', () => undefined);
    }
    let name = '';
    let route: Route | undefined;
    const fail = (error: unknown): void => {
      const proxyError = error instanceof ProxyError ? error : route && error instanceof Error ? upstreamError(error, name, route) : new ProxyError('ERR_PROXY_UPSTREAM', String(error));
      record(proxyError, { sprite: name || null, path: req.url, websocket: true });
      sendErrorOnSocket(req.headers, socket, proxyError);
    };
    try {
      const admitted = admit(req, proto, rehomed);
      name = admitted.name;
      route = admitted.route;
      // Marks the sprite active now, while a wake may still hold the upgrade (a web request does so when it opens).
      activity.touch(name);
      stripHopByHop(req.headers, true);
      const admittedRoute = route;
      const open = (to: ForwardTarget): void => {
        if (socket.destroyed) return;
        webSockets += 1;
        const closed = activity.openWebSocket(name);
        socket.once('close', () => {
          webSockets -= 1;
          closed();
        });
        forwarder.ws(req, socket, head, to, (error) => fail(upstreamError(error, name, admittedRoute)));
      };
      const to = prepare(name, admittedRoute, req.headers);
      if (to) {
        open(to);
        return;
      }
      const controller = new AbortController();
      const onClose = (): void => controller.abort(new Error('the client went away'));
      socket.once('close', onClose);
      wake(name, admittedRoute, controller.signal).then((woken) => {
        socket.off('close', onClose);
        open(woken);
      }, fail);
    } catch (error) {
      if (error instanceof RehomeNeeded) {
        name = error.sprite;
        rehome(error).then(() => {
          if (!socket.destroyed) onUpgrade(req, socket, head, proto, true);
        }, fail);
        return;
      }
      fail(error);
    }
  };

  /** Answers requests the HTTP parser rejected: 431 for big heads, 408 for slow ones, 400 otherwise. */
  const onClientError = (error: Error & { code?: string }, socket: Duplex): void => {
    // A response already under way owns the socket; so does a client that has gone.
    if (!socket.writable || (socket as { _httpMessage?: unknown })._httpMessage || error.code === 'ECONNRESET' || error.code === 'HPE_INVALID_EOF_STATE') {
      socket.destroy();
      return;
    }
    const proxyError = error.code === 'HPE_HEADER_OVERFLOW'
      ? new ProxyError('ERR_PROXY_HEADERS_TOO_LARGE', `the request headers are over ${limits.maxHeaderBytes} bytes`)
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new ProxyError('ERR_PROXY_REQUEST_TIMEOUT', `the request headers did not arrive within ${limits.headersTimeoutMs / 1000} s`)
        : new ProxyError('ERR_PROXY_BAD_REQUEST', `the request could not be parsed (${error.code ?? error.message})`);
    record(proxyError, {});
    sendErrorOnSocket({}, socket, proxyError);
  };

  const track = (socket: Socket): void => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  };

  const httpOptions = {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    // Bodies may take long (uploads, streams): the idle timeout guards them instead.
    requestTimeout: 0,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
  };

  const listen = (server: http.Server | http2.Http2SecureServer, at: ListenAddress): Promise<AddressInfo> => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });

  const url = (scheme: Proto, info: AddressInfo): string => `${scheme}://${info.family === 'IPv6' ? `[${info.address}]` : info.address}:${info.port}`;

  return {
    async start() {
      routes.start();
      // A destroyed sprite's activity goes with it, so the map stays bounded by the mesh.
      unsubscribeSprites = mesh.store.subscribe(spritesTable, (event) => {
        sockets.delete(event.pk.name);
        if (!event.row) activity.forget(event.pk.name);
      });
      await certs?.start();
      const httpAt = init.http === undefined ? PROXY_DEFAULTS.http : init.http;
      const httpsAt = init.https === undefined ? PROXY_DEFAULTS.https : init.https;
      let httpUrl = '';
      let httpsUrl: string | null = null;
      let binding: ListenAddress | null = httpAt;
      try {
        if (httpAt) {
          const server = http.createServer(httpOptions, (req, res) => onRequest(req, res, 'http'));
          server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => onUpgrade(req, socket, head, 'http'));
          server.on('clientError', onClientError);
          server.on('connection', track);
          server.setTimeout(limits.clientIdleMs);
          httpServer = server;
          httpUrl = url('http', await listen(server, httpAt));
        }
        if (httpsAt && certs) {
          binding = httpsAt;
          const bundle = certs.bundle()!;
          const server = http2.createSecureServer({
            ...httpOptions, allowHTTP1: true, handshakeTimeout: limits.headersTimeoutMs, maxSessionMemory: 32,
            SNICallback: (_servername: string, callback: (error: Error | null, context?: tls.SecureContext) => void) => callback(null, certs.context()),
            cert: bundle.cert, key: bundle.key,
          });
          server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => onRequest(req, res, 'https'));
          server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => onUpgrade(req, socket, head, 'https'));
          server.on('clientError', onClientError);
          server.on('connection', track);
          server.on('tlsClientError', () => undefined);
          server.on('sessionError', () => undefined);
          server.setTimeout(limits.clientIdleMs);
          certs.onChange((next) => server.setSecureContext({ cert: next.cert, key: next.key }));
          httpsServer = server;
          httpsUrl = url('https', await listen(server, httpsAt));
        }
      } catch (error) {
        await this.stop();
        throw new Error(`proxy cannot listen on ${binding?.host}:${binding?.port}: ${(error as Error).message}`, { cause: error });
      }
      address = { http: httpUrl, https: httpsUrl, domain };
      return address;
    },
    stop() {
      stopping ??= (async () => {
        const closing = [httpServer, httpsServer].filter((s) => s !== undefined).map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
        for (const socket of connections) socket.destroy();
        await Promise.all(closing);
        forwarder.close();
        certs?.stop();
        routes.stop();
        tokens.close();
        unsubscribeSprites?.();
      })();
      return stopping;
    },
    address: () => address,
    activity: (name) => activity.get(name),
    activities: () => activity.all(),
    ca: () => certs?.ca() ?? null,
    stats: () => ({ requests, webSockets, connections: connections.size, errors: { ...errors }, wake: waker.stats(), forwarder: forwarder.stats() }),
  };
}

/** Thrown inside `admit` when the sprite's owner is down and a rehome hook may move it. */
class RehomeNeeded extends Error {
  readonly sprite: string;
  /** The answer when re-homing is not possible. */
  readonly down: ProxyError;

  constructor(sprite: string, down: ProxyError) {
    super(down.message);
    this.name = 'RehomeNeeded';
    this.sprite = sprite;
    this.down = down;
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
