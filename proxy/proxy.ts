import { Activity, type SpriteActivity } from './activity.ts';
import { WebExchange, WebSocketExchange, type AdapterContext } from './adapters.ts';
import { cachedTokenCheck, type TokenCheck } from './auth.ts';
import type { ProxyErrorCode } from './errors.ts';
import type { Forwarder, ForwarderStats } from './forward.ts';
import { HopSigner } from './hop.ts';
import { SessionSigner } from './session.ts';
import { PROXY_DEFAULTS } from './defaults.ts';
import { Listeners, type ListenAddress } from './listeners.ts';
import type { ProxyLogger } from './logger.ts';
import { RequestPipeline } from './pipeline.ts';
import { RouteTable, type ProxyAddress, type RouteSource } from './routes.ts';
import { CertSource, type CertStore } from './tls.ts';
import { createUndiciForwarder } from './undici-forward.ts';
import { WAKE_DEFAULTS, Waker, waitForHttp, type WakeInit, type WakeStats } from './wake.ts';

export type { ListenAddress } from './listeners.ts';

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
  /** Secret shared by the mesh's peers (derived from the swarm key, apart from the hop secret) that signs login sessions. */
  sessionSecret: string | Buffer;
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
  /** Sprites, peers' proxies and peers' states, kept current by node/. */
  routes: RouteSource;
  /** The mesh's certificate bundles (unused with certificate files or without HTTPS). */
  certs: CertStore;
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

/** Builds the edge proxy: HTTP and HTTPS listeners that route `NAME.<domain>` to the sprite's owner. */
export function createProxy(init: ProxyInit, components: ProxyComponents): EdgeProxy {
  const domain = init.domain ?? PROXY_DEFAULTS.domain;
  const limits = { ...PROXY_DEFAULTS, ...definedOnly(init) };
  const { sprites, logger } = components;
  const tokens = cachedTokenCheck(components.tokens);
  const forwarder = components.forwarder ?? createUndiciForwarder({ upstreamIdleMs: limits.upstreamIdleMs, connectTimeoutMs: limits.connectTimeoutMs });
  const routes = new RouteTable(components.routes);
  const activity = new Activity();
  const hops = new HopSigner(init.hopSecret, components.routes.peerId);
  const sessions = new SessionSigner(init.sessionSecret);
  /** Resolves once a sprite that just started serves HTTP (at once when no service claims its port), or at `deadline`. */
  const ready = async (name: string, deadline: number): Promise<void> => {
    if (!(await sprites.servesHttp(name).catch(() => false))) return;
    const socket = sprites.httpSocket(name);
    if (socket) await waitForHttp(socket, deadline);
  };
  const waker = new Waker({ start: (name) => sprites.start(name), ready }, init.wake);
  const certs = init.https === null ? undefined : new CertSource({ domain, files: init.tlsFiles, waitMs: limits.certWaitMs, lifetimeMs: init.certLifetimeMs }, { store: components.certs, logger });
  const pipeline = new RequestPipeline(
    { domain, rehome: init.rehome, rehomeWaitMs: init.wake?.waitMs ?? WAKE_DEFAULTS.waitMs },
    { routes, hops, tokens, sessions, waker, httpSocket: (name) => sprites.httpSocket(name), ready, logger },
  );
  const adapters: AdapterContext = { forwarder, activity, webSockets: 0 };
  const listeners = new Listeners(limits, {
    request: (req, res, proto) => pipeline.handle(new WebExchange(adapters, req, res, proto)),
    upgrade: (req, socket, head, proto) => pipeline.handle(new WebSocketExchange(adapters, req, socket, head, proto)),
    record: (error, fields) => pipeline.record(error, fields),
    certs,
  });
  let address: ProxyAddress | undefined;
  let unsubscribeSprites: (() => void) | undefined;
  let stopping: Promise<void> | undefined;

  return {
    async start() {
      // Any change of a sprite's row (stop, crash, start, destroy) drops its cached socket path; a
      // destroyed sprite's activity goes with it, so the map stays bounded by the mesh.
      unsubscribeSprites = components.routes.onSpriteChange((name, gone) => {
        pipeline.forgetSocket(name);
        if (gone) activity.forget(name);
      });
      await certs?.start();
      let urls: { http: string; https: string | null };
      try {
        urls = await listeners.start(init.http === undefined ? PROXY_DEFAULTS.http : init.http, init.https === undefined ? PROXY_DEFAULTS.https : init.https);
      } catch (error) {
        await this.stop();
        throw error;
      }
      address = { ...urls, domain };
      return address;
    },
    stop() {
      stopping ??= (async () => {
        await listeners.stop();
        forwarder.close();
        certs?.stop();
        tokens.close();
        unsubscribeSprites?.();
      })();
      return stopping;
    },
    address: () => address,
    activity: (name) => activity.get(name),
    activities: () => activity.all(),
    ca: () => certs?.ca() ?? null,
    stats: () => {
      const { requests, errors } = pipeline.stats();
      return { requests, webSockets: adapters.webSockets, connections: listeners.connections, errors, wake: waker.stats(), forwarder: forwarder.stats() };
    },
  };
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
