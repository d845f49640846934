import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { ProxyServer } from 'http-proxy-3';
import { stripHopByHop } from './headers.ts';
import type { LinkTls } from './link.ts';
import type { AnyResponse } from './pages.ts';

/** Where a request goes: a sprite's HTTP port socket on this host, or another peer's proxy over the peer link (TLS, `peer` named by its certificate). */
export type ForwardTarget = { socketPath: string } | { host: string; port: number; peer: string };

/** Counters of a forwarder, for health reports and leak checks. */
export interface ForwarderStats {
  /** Upstream sockets carrying a request now. */
  activeSockets: number;
  /** Idle keep-alive sockets in the pools. */
  freeSockets: number;
}

/**
 * Moves one request (or WebSocket) to a target and its answer back. Implementations stream bodies
 * both ways without buffering them, keep upstream connections alive between requests, and report
 * each failure once through `onError` (before or after the response started: the caller decides
 * what is still possible). Headers are sent as given: the caller has already rewritten them.
 */
export interface Forwarder {
  /** Proxies a plain HTTP request; `onError` is called at most once. */
  web(req: IncomingMessage, res: AnyResponse, target: ForwardTarget, onError: (error: Error) => void): void;
  /**
   * Proxies an upgrade (WebSocket) over HTTP/1.1; `onError` is called at most once, and only before
   * the upgrade is answered: a WebSocket that breaks later is simply closed on both sides.
   */
  ws(req: IncomingMessage, socket: Duplex, head: Buffer, target: ForwardTarget, onError: (error: Error) => void): void;
  stats(): ForwarderStats;
  /** Closes the idle pooled connections; requests in flight keep theirs until they end. */
  close(): void;
}

/** Options of the http-proxy-3 forwarder. */
export interface HttpProxyForwarderInit {
  /** An upstream that sends nothing for this long is cut (error code ERR_UPSTREAM_IDLE). @default 120000 */
  upstreamIdleMs?: number;
  /** Time allowed to open a new upstream connection. @default 5000 */
  connectTimeoutMs?: number;
  /** Most idle keep-alive connections kept per target. @default 64 */
  maxFreeSockets?: number;
  /** The peer-link credentials other peers' proxies are reached with; without them no peer can be. */
  link?: LinkTls;
}

const OUTGOING = Symbol('upstream request');

export const FORWARDER_DEFAULTS = { upstreamIdleMs: 120_000, connectTimeoutMs: 5000, maxFreeSockets: 64 } as const;

/** A Forwarder on http-proxy-3 with one keep-alive agent for every target. */
export function createHttpProxyForwarder(init: HttpProxyForwarderInit = {}): Forwarder {
  const upstreamIdleMs = init.upstreamIdleMs ?? FORWARDER_DEFAULTS.upstreamIdleMs;
  // LIFO keeps the hottest connections busy and lets the rest time out.
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: init.maxFreeSockets ?? FORWARDER_DEFAULTS.maxFreeSockets, scheduling: 'lifo', timeout: upstreamIdleMs });
  const proxy = new ProxyServer({ xfwd: false, prependPath: false, connectTimeout: init.connectTimeoutMs ?? FORWARDER_DEFAULTS.connectTimeoutMs });
  proxy.on('proxyReq', (proxyReq, req) => {
    // Kept on the request (a WeakMap per request costs the garbage collector more) to tell a stale
    // pooled connection from a real failure.
    (req as { [OUTGOING]?: http.ClientRequest })[OUTGOING] = proxyReq;
    proxyReq.setTimeout(upstreamIdleMs, () => proxyReq.destroy(Object.assign(new Error(`the upstream sent nothing for ${upstreamIdleMs} ms`), { code: 'ERR_UPSTREAM_IDLE' })));
  });
  // The upstream's connection-level headers describe its hop, not the client's.
  proxy.on('proxyRes', (proxyRes) => stripHopByHop(proxyRes.headers));
  // Client sockets whose upgrade went through: an error after that must not write an HTTP answer.
  const upgraded = new WeakSet<object>();
  proxy.on('proxyReqWs', (proxyReq, _req, socket) => proxyReq.once('upgrade', () => upgraded.add(socket)));
  // Errors go to each call's callback; this listener only keeps stray ones from crashing the peer.
  proxy.on('error', () => undefined);
  // Peers' link listeners: one keep-alive agent per peer and credentials (dropped when they change).
  const linkAgents = new Map<string, https.Agent>();
  init.link?.onChange(() => {
    for (const linkAgent of linkAgents.values()) linkAgent.destroy();
    linkAgents.clear();
  });
  const linkAgent = (peer: string, keepAlive: boolean): https.Agent => {
    if (!init.link) throw Object.assign(new Error('this proxy has no peer link to reach other peers with'), { code: 'ECONNREFUSED' });
    if (!keepAlive) return new https.Agent({ keepAlive: false, ...init.link.client(peer) });
    let found = linkAgents.get(peer);
    if (!found) {
      found = new https.Agent({ keepAlive: true, maxFreeSockets: init.maxFreeSockets ?? FORWARDER_DEFAULTS.maxFreeSockets, scheduling: 'lifo', timeout: upstreamIdleMs, ...init.link.client(peer) });
      linkAgents.set(peer, found);
    }
    return found;
  };
  const options = (target: ForwardTarget, keepAlive: boolean): { target: { host: string; port: number; socketPath?: string; protocol: string }; agent?: http.Agent } => (
    'socketPath' in target
      ? { target: { protocol: 'http:', host: 'localhost', port: 80, socketPath: target.socketPath } }
      : { target: { protocol: 'https:', host: target.host, port: target.port }, agent: linkAgent(target.peer, keepAlive) }
  );
  const once = (onError: (error: Error) => void): ((error: Error) => void) => {
    let called = false;
    return (error) => {
      if (called) return;
      called = true;
      onError(error);
    };
  };
  return {
    web(req, res, target, onError) {
      const report = once(onError);
      let opts: ReturnType<typeof options>;
      try {
        opts = { agent, ...options(target, true) };
      } catch (error) {
        report(error as Error);
        return;
      }
      const attempt = (retry: boolean): void => proxy.web(req, res as never, opts, (error: Error & { code?: string }) => {
        // A kept-alive connection the upstream closed just as it was reused never carried the
        // request: a GET or HEAD (no body to replay) goes once more.
        if (retry && error.code === 'ECONNRESET' && (req as { [OUTGOING]?: http.ClientRequest })[OUTGOING]?.reusedSocket && !res.headersSent && (req.method === 'GET' || req.method === 'HEAD')) {
          attempt(false);
          return;
        }
        report(error);
      });
      attempt(true);
    },
    ws(req, socket, head, target, onError) {
      // An upgraded connection never returns to a pool, so it gets its own.
      const report = once(onError);
      let opts: ReturnType<typeof options>;
      try {
        opts = { agent: false as unknown as http.Agent, ...options(target, false) };
      } catch (error) {
        report(error as Error);
        return;
      }
      proxy.ws(req, socket, head, opts, (error) => {
        if (upgraded.has(socket)) socket.destroy();
        else report(error);
      });
    },
    stats() {
      const count = (sockets: NodeJS.ReadOnlyDict<unknown[]>): number => Object.values(sockets).reduce((sum, list) => sum + (list?.length ?? 0), 0);
      return { activeSockets: count(agent.sockets), freeSockets: count(agent.freeSockets) };
    },
    close() {
      agent.destroy();
      for (const linkAgent of linkAgents.values()) linkAgent.destroy();
      linkAgents.clear();
    },
  };
}
