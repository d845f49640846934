import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Activity } from './activity.ts';
import { serveReserved, type LoginTarget, type TokenCheck } from './auth.ts';
import type { ProxyError } from './errors.ts';
import type { Forwarder, ForwardTarget } from './forward.ts';
import type { Proto } from './listeners.ts';
import { sendErrorOnSocket, sendErrorPage, type AnyResponse } from './pages.ts';
import type { Exchange } from './pipeline.ts';
import type { SessionSigner } from './session.ts';

/** What the web and WebSocket adapters share: the forwarder, the activity they count, and the WebSockets open now. */
export interface AdapterContext {
  readonly forwarder: Forwarder;
  readonly activity: Activity;
  /** WebSockets open now through this proxy (its stats read this). */
  webSockets: number;
}

/** A web request (HTTP/1.1 or HTTP/2) in the pipeline: answered on its response, active until the response closes. */
export class WebExchange implements Exchange {
  readonly req: IncomingMessage | Http2ServerRequest;
  readonly res: AnyResponse;
  readonly proto: Proto;
  readonly upgrade = false;
  readonly #context: AdapterContext;

  constructor(context: AdapterContext, req: IncomingMessage | Http2ServerRequest, res: AnyResponse, proto: Proto) {
    this.#context = context;
    this.req = req;
    this.res = res;
    this.proto = proto;
  }

  /** Serves login and logout. */
  reserved(url: string, target: LoginTarget, tokens: TokenCheck, sessions: SessionSigner): boolean {
    return serveReserved(url, this.res, target, tokens, sessions);
  }

  /** Open until the response ends: a long stream or upload keeps its sprite awake. */
  admitted(name: string): void {
    this.res.once('close', this.#context.activity.openRequest(name));
  }

  /** Listens for the response closing. */
  onClose(listener: () => void): () => void {
    this.res.once('close', listener);
    return () => this.res.off('close', listener);
  }

  /** Whether the response is gone. */
  gone(): boolean {
    return this.res.destroyed;
  }

  /** Forwards through `forwarder.web`. */
  forward(_name: string, to: ForwardTarget, onError: (error: Error) => void): void {
    this.#context.forwarder.web(this.req as IncomingMessage, this.res, to, onError);
  }

  /** Writes the error page, unless the response has ended or the client has gone. */
  answer(error: ProxyError): void {
    if (this.res.destroyed || this.res.writableEnded || this.req.socket?.destroyed) return;
    sendErrorPage(this.req.headers, this.res, error);
  }
}

/** A WebSocket upgrade in the pipeline: answered on its raw socket, counted as open from the upgrade until the socket closes. */
export class WebSocketExchange implements Exchange {
  readonly req: IncomingMessage;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly proto: Proto;
  readonly upgrade = true;
  readonly #context: AdapterContext;

  constructor(context: AdapterContext, req: IncomingMessage, socket: Duplex, head: Buffer, proto: Proto) {
    this.#context = context;
    this.req = req;
    this.socket = socket;
    this.head = head;
    this.proto = proto;
    // A client that resets the socket must not crash the peer; close does the cleanup.
    socket.on('error', () => undefined);
  }

  /** Marks the sprite active now, while a wake may still hold the upgrade (a web request does so when it opens). */
  admitted(name: string): void {
    this.#context.activity.touch(name);
  }

  /** Listens for the socket closing. */
  onClose(listener: () => void): () => void {
    this.socket.once('close', listener);
    return () => this.socket.off('close', listener);
  }

  /** Whether the socket is gone. */
  gone(): boolean {
    return this.socket.destroyed;
  }

  /** Counts the WebSocket open until its socket closes and forwards through `forwarder.ws`; a client gone meanwhile is dropped. */
  forward(name: string, to: ForwardTarget, onError: (error: Error) => void): void {
    if (this.socket.destroyed) return;
    const context = this.#context;
    context.webSockets += 1;
    const closed = context.activity.openWebSocket(name);
    this.socket.once('close', () => {
      context.webSockets -= 1;
      closed();
    });
    context.forwarder.ws(this.req, this.socket, this.head, to, onError);
  }

  /** Writes a plain HTTP/1.1 error and closes the socket. */
  answer(error: ProxyError): void {
    sendErrorOnSocket(this.req.headers, this.socket, error);
  }
}
