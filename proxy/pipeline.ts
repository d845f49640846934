import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { authorized, callerIsAdmin, RESERVED_PREFIX, stripCredentials, type LoginTarget, type TokenCheck } from './auth.ts';
import { ProxyError, type ProxyErrorCode } from './errors.ts';
import type { ForwardTarget } from './forward.ts';
import { setForwarded, stripHopByHop } from './headers.ts';
import { HOP_HEADER, type Hop, type HopSigner } from './hop.ts';
import { spriteFromHost } from './host.ts';
import type { Proto } from './listeners.ts';
import type { ProxyLogger } from './logger.ts';
import type { Route, RouteTable } from './routes.ts';
import type { Scheme, SessionSigner } from './session.ts';
import type { Waker } from './wake.ts';

/**
 * One client request as the pipeline drives it. The web and WebSocket adapters differ only here:
 * how the request is forwarded, how it counts as activity, and how an error is answered.
 */
export interface Exchange {
  /** The request; its headers are rewritten in place for the upstream. */
  readonly req: IncomingMessage | Http2ServerRequest;
  /** The listener it arrived on. */
  readonly proto: Proto;
  /** Whether it is a WebSocket upgrade: its upgrade headers survive the hop-by-hop stripping. */
  readonly upgrade: boolean;
  /** Answers one of the proxy's own paths (login, logout) for `target`; true when it did. Absent where there are none (upgrades). */
  reserved?(url: string, target: LoginTarget, tokens: TokenCheck, sessions: SessionSigner): boolean;
  /** Counts the admitted request as activity of its sprite. */
  admitted(name: string): void;
  /** Calls `listener` once when the client goes away; returns what removes it. */
  onClose(listener: () => void): () => void;
  /** Whether the client has gone; a re-homed request is dropped then. */
  gone(): boolean;
  /** Hands the request for sprite `name` to the forwarder; `onError` is called at most once. */
  forward(name: string, to: ForwardTarget, onError: (error: Error) => void): void;
  /** Answers an error, as far as the client can still take one. */
  answer(error: ProxyError): void;
}

/** Options of the pipeline (from the proxy's). */
export interface PipelineInit {
  /** Sprite URLs are `NAME.<domain>`. */
  domain: string;
  /** Moves a sprite whose owner is down to a live peer (the proxy's `rehome` option); without it such requests get 503. */
  rehome?(name: string): Promise<void>;
  /** How long a re-homed request waits for the sprite's services (the wake wait limit). */
  rehomeWaitMs: number;
}

/** What the pipeline uses. */
export interface PipelineComponents {
  routes: Pick<RouteTable, 'sprite' | 'resolve' | 'ownerDown'>;
  hops: Pick<HopSigner, 'verify' | 'header'>;
  tokens: TokenCheck;
  /** Signs and checks login sessions (the cookie). */
  sessions: SessionSigner;
  waker: Pick<Waker, 'wait'>;
  /** Host path of the HTTP port socket of a sprite running on this peer; undefined when it is not running here. */
  httpSocket(name: string): string | undefined;
  /** Resolves once a sprite that just started serves HTTP, or at `deadline` (ms on the `performance.now` clock). */
  ready(name: string, deadline: number): Promise<void>;
  logger: ProxyLogger;
}

/** Counters of the pipeline, since start. */
export interface PipelineStats {
  /** Requests taken, web and WebSocket. */
  requests: number;
  /** Error answers by code. */
  errors: Partial<Record<ProxyErrorCode, number>>;
}

/**
 * The steps every request passes, web or WebSocket: admit (hop, host, auth, route), prepare the
 * upstream and its headers, wake a sleeping local sprite or re-home one whose owner is down, then
 * forward; every failure, at any step, becomes one counted, logged ProxyError answer.
 */
export class RequestPipeline {
  readonly #init: PipelineInit;
  readonly #components: PipelineComponents;
  // Socket paths of running local sprites: asking the sprite manager costs a store read per request.
  readonly #sockets = new Map<string, string>();
  readonly #errors: Partial<Record<ProxyErrorCode, number>> = {};
  readonly #logged = new Map<string, number>();
  readonly #rehoming = new Map<string, Promise<void>>();
  #requests = 0;

  constructor(init: PipelineInit, components: PipelineComponents) {
    this.#init = init;
    this.#components = components;
  }

  /** Runs one request to its forwarding or its error answer; `rehomed` marks the second pass after a re-home. */
  handle(x: Exchange, rehomed = false): void {
    if (!rehomed) this.#requests += 1;
    let name = '';
    let route: Route | undefined;
    try {
      const headers = x.req.headers;
      if (x.reserved) {
        const url = x.req.url ?? '/';
        if (url.startsWith(RESERVED_PREFIX) && headers[HOP_HEADER] === undefined) {
          // Login and logout belong to the URL, not to the sprite: any peer serves them.
          const name = spriteFromHost((headers[':authority'] as string | undefined) ?? headers.host, this.#init.domain);
          const target = { name, scheme: x.proto, sprite: this.#components.routes.sprite(name) };
          if (x.reserved(url, target, this.#components.tokens, this.#components.sessions)) return;
          throw new ProxyError('ERR_PROXY_SPRITE_NOT_FOUND', `${RESERVED_PREFIX} paths belong to the proxy; this one does not exist`);
        }
      }
      const admitted = this.#admit(x, rehomed);
      name = admitted.name;
      const admittedRoute = admitted.route;
      route = admittedRoute;
      x.admitted(name);
      stripHopByHop(headers, x.upgrade);
      // The common cases (a running local sprite, a remote owner) stay synchronous: no promise per request.
      const to = this.#prepare(name, admittedRoute, headers);
      if (to) {
        this.#forward(x, name, admittedRoute, to);
        return;
      }
      const controller = new AbortController();
      const removeListener = x.onClose(() => controller.abort(new Error('the client went away')));
      this.#wake(name, admittedRoute, controller.signal).then((woken) => {
        removeListener();
        this.#forward(x, name, admittedRoute, woken);
      }, (error: unknown) => this.#fail(x, error, name, admittedRoute));
    } catch (error) {
      if (error instanceof RehomeNeeded) {
        this.#rehome(error).then(() => {
          if (!x.gone()) this.handle(x, true);
        }, (failure: unknown) => this.#fail(x, failure, error.sprite, undefined));
        return;
      }
      this.#fail(x, error, name, route);
    }
  }

  /** Counts an error, logs server-side faults (at most one line per code per 10 s), and returns it. */
  record(error: ProxyError, fields: Record<string, unknown>): ProxyError {
    this.#errors[error.code] = (this.#errors[error.code] ?? 0) + 1;
    if (error.status >= 502) {
      const now = performance.now();
      if (now - (this.#logged.get(error.code) ?? -Infinity) > 10_000) {
        this.#logged.set(error.code, now);
        this.#components.logger.warn('proxy error', { code: error.code, error: error.message, ...fields });
      }
    }
    return error;
  }

  /** Forgets the cached socket path of a sprite whose row changed (stop, crash, start, destroy). */
  forgetSocket(name: string): void {
    this.#sockets.delete(name);
  }

  /** The counters since start. */
  stats(): PipelineStats {
    return { requests: this.#requests, errors: { ...this.#errors } };
  }

  /**
   * The checks every request passes: hop, host, auth, route; then the forwarding headers of a
   * client's request. Auth comes before routing, so a caller without a credential for the sprite
   * triggers no re-homing, and gets one answer (401) whether the name is unknown or a private
   * sprite; only admins and peers' hops learn that a name is unknown (404).
   */
  #admit(x: Exchange, rehomed: boolean): { name: string; route: Route; hop: Hop | undefined } {
    const { routes, hops, tokens, sessions } = this.#components;
    const headers = x.req.headers;
    let hop: Hop | undefined;
    if (headers[HOP_HEADER] !== undefined) {
      hop = hops.verify(headers[HOP_HEADER]);
      if (!hop) throw new ProxyError('ERR_PROXY_BAD_HOP', 'the request carries a hop header that no peer of this mesh signed');
    }
    const host = (headers[':authority'] as string | undefined) ?? headers.host;
    const name = hop?.sprite ?? spriteFromHost(host, this.#init.domain);
    // Over a signed hop, the origin the client asked for is what the first peer recorded.
    const scheme: Scheme = hop ? (headers['x-forwarded-proto'] === 'https' ? 'https' : 'http') : x.proto;
    const origin = hop ? headerText(headers['x-forwarded-host']) : (host ?? '');
    const sprite = routes.sprite(name);
    if (!sprite) {
      if (hop || callerIsAdmin(headers, tokens)) throw new ProxyError('ERR_PROXY_SPRITE_NOT_FOUND', `no sprite named ${name} in this mesh`);
      throw unauthorized(name);
    }
    if (!authorized(sprite, headers, { tokens, sessions, scheme, host: origin, method: x.req.method })) throw unauthorized(name);
    let route: Route;
    try {
      route = routes.resolve(name);
    } catch (error) {
      // Only the peer the client reached re-homes: a forwarded request's peer already tried.
      if (this.#init.rehome && !hop && !rehomed && routes.ownerDown(name)) throw new RehomeNeeded(name, error as ProxyError);
      throw error;
    }
    if (hop && route.kind === 'remote') {
      throw new ProxyError('ERR_PROXY_LOOP', `peer ${hop.peer} forwarded a request for ${name} here, but this peer sees it on peer ${route.owner}`);
    }
    if (!hop) setForwarded(headers, { address: x.req.socket?.remoteAddress, proto: x.proto, host: host ?? '' });
    return { name, route, hop };
  }

  /**
   * Rewrites the headers for the upstream and returns it: the owner's proxy (with a signed hop
   * header), or this peer's sprite socket without the proxy's credentials; undefined when the
   * local sprite is not running (the caller wakes it).
   */
  #prepare(name: string, route: Route, headers: IncomingMessage['headers']): ForwardTarget | undefined {
    if (route.kind === 'remote') {
      headers[HOP_HEADER] = this.#components.hops.header(name);
      return route.target;
    }
    delete headers[HOP_HEADER];
    stripCredentials(headers, this.#components.tokens);
    let socketPath = route.sprite.state === 'running' ? this.#sockets.get(name) : undefined;
    if (socketPath === undefined) {
      socketPath = this.#components.httpSocket(name);
      if (socketPath !== undefined && route.sprite.state === 'running') this.#sockets.set(name, socketPath);
    }
    return socketPath === undefined ? undefined : { socketPath };
  }

  /** Wakes a local sprite that is not running (sleeping or stopped; a failed sprite needs a person). */
  async #wake(name: string, route: Route, signal: AbortSignal): Promise<ForwardTarget> {
    if (route.sprite.state === 'failed') {
      throw new ProxyError('ERR_PROXY_SPRITE_FAILED', `sprite ${name} has failed${route.sprite.reason ? ` (${route.sprite.reason})` : ''}; \`sprite start ${name}\` restarts it`, { retryAfter: 30 });
    }
    await this.#components.waker.wait(name, signal);
    const socketPath = this.#components.httpSocket(name);
    if (socketPath === undefined) throw new ProxyError('ERR_PROXY_WAKE_FAILED', `sprite ${name} stopped again while waking`, { retryAfter: 5 });
    return { socketPath };
  }

  /** Runs the rehome hook once per sprite at a time; its failure becomes the request's 503 with its reason. */
  #rehome(needed: RehomeNeeded): Promise<void> {
    let running = this.#rehoming.get(needed.sprite);
    if (!running) {
      // Taken over, the sprite starts here: hold the request until its services listen, like a wake.
      const deadline = performance.now() + this.#init.rehomeWaitMs;
      running = Promise.resolve()
        .then(() => this.#init.rehome!(needed.sprite))
        .then(() => this.#components.ready(needed.sprite, deadline))
        .finally(() => this.#rehoming.delete(needed.sprite));
      this.#rehoming.set(needed.sprite, running);
    }
    return running.catch((error: unknown) => {
      throw new ProxyError('ERR_PROXY_OWNER_DOWN', (error as Error)?.message ?? String(error), { cause: error, retryAfter: needed.down.retryAfter });
    });
  }

  #forward(x: Exchange, name: string, route: Route, to: ForwardTarget): void {
    x.forward(name, to, (error) => this.#fail(x, this.#upstreamError(error, name, route), name, route));
  }

  /** Turns any failure into a ProxyError, counts and logs it, and lets the adapter answer it. */
  #fail(x: Exchange, error: unknown, name: string, route: Route | undefined): void {
    const proxyError = error instanceof ProxyError
      ? error
      : route && error instanceof Error ? this.#upstreamError(error, name, route) : new ProxyError('ERR_PROXY_UPSTREAM', (error as Error)?.message ?? String(error));
    const fields = { sprite: name || null, path: x.req.url };
    this.record(proxyError, x.upgrade ? { ...fields, websocket: true } : fields);
    x.answer(proxyError);
  }

  /** Maps a forwarding failure to the answer the client gets. */
  #upstreamError(error: Error & { code?: string }, name: string, route: Route): ProxyError {
    const code = error.code ?? '';
    if (code === 'ERR_UPSTREAM_IDLE') return new ProxyError('ERR_PROXY_UPSTREAM_TIMEOUT', route.kind === 'remote' ? `peer ${route.owner} sent nothing for too long for sprite ${name}` : `sprite ${name} sent nothing for too long`, { cause: error });
    if (route.kind === 'remote') {
      if (['ECONNREFUSED', 'ECONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) {
        return new ProxyError('ERR_PROXY_OWNER_DOWN', `sprite ${name} runs on peer ${route.owner}, whose proxy at ${route.target.host}:${route.target.port} refused the connection (${code})`, { cause: error, retryAfter: 5 });
      }
      return new ProxyError('ERR_PROXY_UPSTREAM', `the connection to peer ${route.owner} (which runs ${name}) broke: ${error.message}`, { cause: error });
    }
    // The sprite's socket may be gone (stopped, restarted): ask the sprite manager again next time.
    this.#sockets.delete(name);
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return new ProxyError('ERR_PROXY_UPSTREAM', `sprite ${name} is not accepting connections on its HTTP socket`, { cause: error, retryAfter: 2 });
    return new ProxyError('ERR_PROXY_UPSTREAM', `nothing answered on port ${route.sprite.httpPort} in sprite ${name} (is a service listening there?)`, { cause: error });
  }
}

/** The one answer for a name the caller may not open, whether or not it exists. */
function unauthorized(name: string): ProxyError {
  return new ProxyError('ERR_PROXY_UNAUTHORIZED', `sprite ${name} does not exist, or needs an API token of its org: send Authorization: Bearer TOKEN, or sign in at ${RESERVED_PREFIX}login?token=TOKEN`);
}

function headerText(value: string | string[] | undefined): string {
  return typeof value === 'string' ? value : '';
}

/** Thrown inside `#admit` when the sprite's owner is down and a rehome hook may move it. */
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
