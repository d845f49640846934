import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { Pool, type Dispatcher } from 'undici';
import { FORWARDER_DEFAULTS, createHttpProxyForwarder, type Forwarder, type ForwardTarget, type HttpProxyForwarderInit } from './forward.ts';
import { HOP_BY_HOP } from './headers.ts';

/** Options of the undici forwarder: the timeouts and peer-link credentials of the http-proxy-3 one. */
export type UndiciForwarderInit = Pick<HttpProxyForwarderInit, 'upstreamIdleMs' | 'connectTimeoutMs' | 'link'>;

/** Once this many pools (one per target) exist, a new target first drops every pool with no connection. */
const MAX_IDLE_POOLS = 64;

/** undici's error codes, as the caller's error mapping knows them (the http-proxy-3 forwarder's names). */
const CODES: Record<string, string> = {
  UND_ERR_HEADERS_TIMEOUT: 'ERR_UPSTREAM_IDLE',
  UND_ERR_BODY_TIMEOUT: 'ERR_UPSTREAM_IDLE',
  UND_ERR_CONNECT_TIMEOUT: 'ECONNECT_TIMEOUT',
  UND_ERR_SOCKET: 'ECONNRESET',
};

/**
 * A Forwarder on undici: one keep-alive Pool per target (a sprite's socket or a peer's proxy) for
 * plain requests, which costs about half the CPU of Node's HTTP client per request. Upgrades
 * (WebSockets) go through the http-proxy-3 forwarder: they hold a socket each and never return to
 * a pool, so a faster client buys nothing there.
 */
export function createUndiciForwarder(init: UndiciForwarderInit = {}): Forwarder {
  const upstreamIdleMs = init.upstreamIdleMs ?? FORWARDER_DEFAULTS.upstreamIdleMs;
  const connectTimeoutMs = init.connectTimeoutMs ?? FORWARDER_DEFAULTS.connectTimeoutMs;
  const { link } = init;
  const upgrades = createHttpProxyForwarder({ upstreamIdleMs, connectTimeoutMs, link });
  const pools = new Map<string, Pool>();
  // New link credentials (a new CA): connections made with the old ones go.
  link?.onChange(() => {
    for (const [key, pool] of pools) {
      if (key.startsWith('link ')) {
        pools.delete(key);
        void pool.close().catch(() => undefined);
      }
    }
  });

  const poolFor = (target: ForwardTarget): Pool => {
    const key = 'socketPath' in target ? target.socketPath : `link ${target.host}:${target.port} ${target.peer}`;
    let pool = pools.get(key);
    if (pool) return pool;
    // Sprites come and go, each with its own socket path: drop pools that hold no connection.
    if (pools.size >= MAX_IDLE_POOLS) {
      for (const [other, candidate] of pools) {
        const s = candidate.stats;
        if (s.connected === 0 && s.pending === 0 && s.running === 0) {
          pools.delete(other);
          void candidate.close().catch(() => undefined);
        }
      }
    }
    if (!('socketPath' in target) && !link) throw Object.assign(new Error('this proxy has no peer link to reach other peers with'), { code: 'ECONNREFUSED' });
    const origin = 'socketPath' in target ? 'http://localhost' : `https://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
    pool = new Pool(origin, {
      // Another peer's proxy is reached over the peer link: mutual TLS, its certificate must name the owner.
      ...('socketPath' in target ? { socketPath: target.socketPath } : { connect: { ...link!.client(target.peer), timeout: connectTimeoutMs } }),
      connections: null, pipelining: 1, connectTimeout: connectTimeoutMs,
      headersTimeout: upstreamIdleMs, bodyTimeout: upstreamIdleMs,
      // The sprite's and peers' servers announce their keep-alive timeout; this margin keeps a
      // connection from being reused just as the server closes it.
      keepAliveTimeoutThreshold: 1000,
    });
    pools.set(key, pool);
    return pool;
  };

  return {
    web(req, res, target, onError) {
      let pool: Pool;
      try {
        pool = poolFor(target);
      } catch (error) {
        onError(error as Error);
        return;
      }
      const method = req.method ?? 'GET';
      const h2 = (req as unknown as Http2ServerRequest).stream !== undefined;
      const headers: Record<string, string | string[]> = {};
      for (const name in req.headers) {
        const value = req.headers[name];
        // HTTP/2 pseudo-headers and `expect` (Node already answered 100-continue) stay here.
        if (value === undefined || name.charCodeAt(0) === 58 || name === 'expect') continue;
        headers[name] = value;
      }
      if (h2 && headers.host === undefined) headers.host = req.headers[':authority'] as string;
      const body = hasBody(req, h2) ? req : null;
      let done = false;
      let started = false;
      let abort: ((error: Error) => void) | undefined;
      const fail = (error: Error & { code?: string }): void => {
        if (done) return;
        done = true;
        const code = error.code && CODES[error.code];
        onError(code ? Object.assign(new Error(error.message, { cause: error }), { code }) : error);
      };
      // A client that leaves early cuts the upstream request at once; undici then discards that connection.
      res.once('close', () => {
        if (!res.writableFinished) abort?.(Object.assign(new Error('the client went away'), { code: 'ECLIENTGONE' }));
      });
      const dispatch = (retry: boolean): void => {
        const handler: Dispatcher.DispatchHandler = {
          onConnect(cut) {
            abort = cut;
            if (res.destroyed) cut(new Error('the client went away'));
          },
          onHeaders(status, raw, resume) {
            started = true;
            const out = responseHeaders(raw as Buffer[], h2);
            (res as { writeHead(status: number, headers: string[]): void }).writeHead(status, out);
            res.on('drain', resume);
            return true;
          },
          onData(chunk) {
            return (res as { write(chunk: Buffer): boolean }).write(chunk);
          },
          onComplete() {
            done = true;
            res.end();
          },
          onError(error: Error & { code?: string }) {
            // A kept-alive connection the upstream closed as it was reused never carried the request:
            // a request without a body goes once more (undici does not say whether the socket was reused).
            if (retry && !started && body === null && (method === 'GET' || method === 'HEAD') && error.code === 'UND_ERR_SOCKET' && !res.destroyed) {
              dispatch(false);
              return;
            }
            fail(error);
          },
        };
        pool.dispatch({ origin: undefined, path: req.url ?? '/', method: method as Dispatcher.HttpMethod, headers, body, upgrade: null }, handler);
      };
      dispatch(true);
    },
    ws(req, socket, head, target, onError) {
      upgrades.ws(req, socket, head, target, onError);
    },
    stats() {
      let active = 0;
      let free = 0;
      for (const pool of pools.values()) {
        const s = pool.stats;
        free += s.free;
        active += s.connected - s.free;
      }
      const other = upgrades.stats();
      return { activeSockets: active + other.activeSockets, freeSockets: free + other.freeSockets };
    },
    close() {
      for (const pool of pools.values()) void pool.close().catch(() => undefined);
      pools.clear();
      upgrades.close();
    },
  };
}

/** Whether a client request carries a body to stream on (HTTP/2: its HEADERS frame did not end the stream). */
function hasBody(req: IncomingMessage, h2: boolean): boolean {
  if (h2) return !(req as unknown as Http2ServerRequest).stream.endAfterHeaders;
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  // Transfer-Encoding is a hop-by-hop header, already gone from `headers`; the raw list keeps it.
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 17 && raw[i]!.toLowerCase() === 'transfer-encoding') return true;
  return false;
}

/** The upstream's raw response headers as a flat name/value list without hop-by-hop ones (lowercased for HTTP/2). */
function responseHeaders(raw: Buffer[], h2: boolean): string[] {
  const out: string[] = [];
  let named: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const original = raw[i]!.toString('latin1');
    const name = original.toLowerCase();
    if (HOP_BY_HOP.has(name)) {
      // Headers the Connection header names are hop-by-hop too.
      if (name === 'connection') (named ??= []).push(...raw[i + 1]!.toString('latin1').toLowerCase().split(',').map((token) => token.trim()));
      continue;
    }
    out.push(h2 ? name : original, raw[i + 1]!.toString('latin1'));
  }
  if (!named) return out;
  const drop = new Set(named);
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) if (!drop.has(out[i]!.toLowerCase())) kept.push(out[i]!, out[i + 1]!);
  return kept;
}
