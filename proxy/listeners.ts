import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { ProxyError } from './errors.ts';
import type { LinkTls } from './link.ts';
import { sendErrorOnSocket, type AnyResponse } from './pages.ts';
import type { CertSource } from './tls.ts';

/** A listen address; port 0 picks a free port. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** The listener a request arrived on. */
export type Proto = 'http' | 'https';

/** Limits of the client side of the listeners (the proxy's options of the same names). */
export interface ListenerLimits {
  maxHeaderBytes: number;
  headersTimeoutMs: number;
  clientIdleMs: number;
  keepAliveTimeoutMs: number;
}

/** What the listeners hand requests to, and where the HTTPS certificate comes from. */
export interface ListenerComponents {
  /** Takes a web request (HTTP/1.1 or HTTP/2); `link` when it came over the peer link. */
  request(req: IncomingMessage | Http2ServerRequest, res: AnyResponse, proto: Proto, link: boolean): void;
  /** Takes an upgrade (WebSocket) request. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, proto: Proto, link: boolean): void;
  /** Counts and logs an error the listeners answer themselves (a request the parser rejected). */
  record(error: ProxyError, fields: Record<string, unknown>): void;
  /** The certificate; without it there is no HTTPS listener. */
  certs: CertSource | undefined;
  /** The peer-link credentials; without them there is no link listener. */
  link: LinkTls | undefined;
}

/**
 * The proxy's HTTP and HTTPS (HTTP/2 with HTTP/1.1 fallback) servers: their limits, the answers to
 * requests the parser rejects, and the client connections they hold, which `stop` cuts.
 */
export class Listeners {
  readonly #limits: ListenerLimits;
  readonly #components: ListenerComponents;
  readonly #connections = new Set<Socket>();
  readonly #servers: (http.Server | https.Server | http2.Http2SecureServer)[] = [];

  constructor(limits: ListenerLimits, components: ListenerComponents) {
    this.#limits = limits;
    this.#components = components;
  }

  /** Client connections open now (HTTP and HTTPS). */
  get connections(): number {
    return this.#connections.size;
  }

  /**
   * Listens where asked (null: no such listener) and resolves with the URLs; rejects with the
   * address that could not be bound, leaving the servers already listening for `stop`.
   */
  async start(httpAt: ListenAddress | null, httpsAt: ListenAddress | null, linkAt: ListenAddress | null = null): Promise<{ http: string; https: string | null; link: string | null }> {
    const { certs, request, upgrade, link } = this.#components;
    const limits = this.#limits;
    const options = {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      // Bodies may take long (uploads, streams): the idle timeout guards them instead.
      requestTimeout: 0,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    };
    const onClientError = (error: Error & { code?: string }, socket: Duplex): void => this.#clientError(error, socket);
    const track = (socket: Socket): void => {
      this.#connections.add(socket);
      socket.once('close', () => this.#connections.delete(socket));
    };
    let httpUrl = '';
    let httpsUrl: string | null = null;
    let linkUrl: string | null = null;
    let binding: ListenAddress | null = httpAt;
    try {
      if (httpAt) {
        const server = http.createServer(options, (req, res) => request(req, res, 'http', false));
        server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrade(req, socket, head, 'http', false));
        server.on('clientError', onClientError);
        server.on('connection', track);
        server.setTimeout(limits.clientIdleMs);
        this.#servers.push(server);
        httpUrl = url('http', await listen(server, httpAt));
      }
      if (httpsAt && certs) {
        binding = httpsAt;
        const bundle = certs.bundle()!;
        const server = http2.createSecureServer({
          ...options, allowHTTP1: true, handshakeTimeout: limits.headersTimeoutMs, maxSessionMemory: 32,
          SNICallback: (_servername: string, callback: (error: Error | null, context?: tls.SecureContext) => void) => callback(null, certs.context()),
          cert: bundle.cert, key: bundle.key,
        });
        server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => request(req, res, 'https', false));
        server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrade(req, socket, head, 'https', false));
        server.on('clientError', onClientError);
        server.on('connection', track);
        server.on('tlsClientError', () => undefined);
        server.on('sessionError', () => undefined);
        server.setTimeout(limits.clientIdleMs);
        certs.onChange((next) => server.setSecureContext({ cert: next.cert, key: next.key }));
        this.#servers.push(server);
        httpsUrl = url('https', await listen(server, httpsAt));
      }
      if (linkAt && link) {
        // Other peers' proxies only: TLS with a client certificate of the peer-link CA, HTTP/1.1 kept alive.
        binding = linkAt;
        const server = https.createServer({ ...options, ...link.server(), handshakeTimeout: limits.headersTimeoutMs }, (req, res) => request(req, res, 'https', true));
        server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrade(req, socket, head, 'https', true));
        server.on('clientError', onClientError);
        server.on('connection', track);
        server.on('tlsClientError', () => undefined);
        server.setTimeout(limits.clientIdleMs);
        link.onChange(() => server.setSecureContext(link.server()));
        this.#servers.push(server);
        linkUrl = url('https', await listen(server, linkAt));
      }
    } catch (error) {
      throw new Error(`proxy cannot listen on ${binding?.host}:${binding?.port}: ${(error as Error).message}`, { cause: error });
    }
    return { http: httpUrl, https: httpsUrl, link: linkUrl };
  }

  /** Stops listening and cuts every open client connection; resolves once the servers have closed. */
  async stop(): Promise<void> {
    const closing = this.#servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const socket of this.#connections) socket.destroy();
    await Promise.all(closing);
  }

  /** Answers requests the HTTP parser rejected: 431 for big heads, 408 for slow ones, 400 otherwise. */
  #clientError(error: Error & { code?: string }, socket: Duplex): void {
    // A response already under way owns the socket; so does a client that has gone.
    if (!socket.writable || (socket as { _httpMessage?: unknown })._httpMessage || error.code === 'ECONNRESET' || error.code === 'HPE_INVALID_EOF_STATE') {
      socket.destroy();
      return;
    }
    const limits = this.#limits;
    const proxyError = error.code === 'HPE_HEADER_OVERFLOW'
      ? new ProxyError('ERR_PROXY_HEADERS_TOO_LARGE', `the request headers are over ${limits.maxHeaderBytes} bytes`)
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new ProxyError('ERR_PROXY_REQUEST_TIMEOUT', `the request headers did not arrive within ${limits.headersTimeoutMs / 1000} s`)
        : new ProxyError('ERR_PROXY_BAD_REQUEST', `the request could not be parsed (${error.code ?? error.message})`);
    this.#components.record(proxyError, {});
    sendErrorOnSocket({}, socket, proxyError);
  }
}

function listen(server: http.Server | https.Server | http2.Http2SecureServer, at: ListenAddress): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function url(scheme: Proto, info: AddressInfo): string {
  return `${scheme}://${info.family === 'IPv6' ? `[${info.address}]` : info.address}:${info.port}`;
}
