import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { stripHopByHop, type LinkTls } from '../../proxy/index.ts';
import { PeerError } from '../errors.ts';
import type { PeerTarget } from './placement.ts';

/**
 * The transport under the peer client: relays a client's request or WebSocket upgrade to another
 * peer's link listener (mutual TLS, the server's certificate checked against the peer meant) and
 * its answer back, with the headers the caller adds. It knows no header of its own.
 */

/** How a request is relayed: the body when it was read already, and how long the peer has to start answering. */
export interface RelayOptions {
  /** Connections between peers are reused (one pool per peer and credentials: the TLS options are part of the key). */
  agent: https.Agent;
  /** This peer's link credentials. */
  link: LinkTls;
  /** Sent instead of the request's own stream (which the caller read to parse it). */
  body?: Buffer;
  /** The peer must answer (or acknowledge with 102 Processing) within this many ms. */
  answerWithinMs?: number;
}

/**
 * Sends a plain HTTP request on to another peer's API with `extra` headers and streams its answer
 * back. Throws ERR_OWNER_UNREACHABLE (nothing sent to the client yet) when that peer cannot be
 * reached or, with `answerWithinMs`, does not start answering in time (a frozen or overloaded peer).
 */
export function relayRequest(req: IncomingMessage, res: ServerResponse, peer: PeerTarget, extra: Record<string, string>, options: RelayOptions): Promise<void> {
  const { body, answerWithinMs, agent } = options;
  const api = peer.link;
  const url = target(api, req);
  return new Promise((resolve, reject) => {
    const upstream = https.request(url, { ...options.link.client(peer.peer), method: req.method, headers: relayHeaders(req.headers, extra, body), agent });
    const timer = answerWithinMs === undefined ? undefined : setTimeout(() => upstream.destroy(new Error(`no answer within ${answerWithinMs} ms`)), answerWithinMs);
    // A peer that takes on a slow job says so at once with 102 Processing (an arbiter does).
    upstream.once('information', () => clearTimeout(timer));
    upstream.once('response', (answer) => {
      clearTimeout(timer);
      res.writeHead(answer.statusCode ?? 502, withoutHopByHop(answer.headers));
      answer.pipe(res);
      answer.once('end', () => resolve());
      answer.once('error', () => res.destroy());
      res.once('close', () => {
        if (!answer.complete) answer.destroy();
        resolve();
      });
    });
    upstream.once('error', (error) => {
      clearTimeout(timer);
      if (res.headersSent) {
        res.destroy();
        resolve();
      } else {
        reject(unreachable(api, error));
      }
    });
    req.once('aborted', () => upstream.destroy());
    if (body) upstream.end(body);
    else req.pipe(upstream);
  });
}

/** Sends a WebSocket upgrade on to another peer's API with `extra` headers and splices the two sockets once it agrees. */
export function relayUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, peer: PeerTarget, extra: Record<string, string>, link: LinkTls): Promise<void> {
  const api = peer.link;
  const url = target(api, req);
  return new Promise((resolve, reject) => {
    // Every header travels, the connection's own too: the next hop needs `upgrade` and `connection`.
    const headers: IncomingHttpHeaders = { ...req.headers, ...extra };
    // An upgraded connection never returns to a pool: it gets its own.
    const upstream = https.request(url, { ...link.client(peer.peer), method: req.method, headers, agent: false });
    upstream.once('upgrade', (answer, upstreamSocket, upstreamHead) => {
      socket.write(statusLine(answer) + rawHeaders(answer.rawHeaders) + '\r\n');
      if (upstreamHead.length > 0) socket.write(upstreamHead);
      if (head.length > 0) upstreamSocket.write(head);
      upstreamSocket.on('error', () => socket.destroy());
      socket.on('error', () => upstreamSocket.destroy());
      upstreamSocket.pipe(socket).pipe(upstreamSocket);
      resolve();
    });
    // The peer refused (404, 409, ...): relay its answer as plain HTTP.
    upstream.once('response', (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.once('end', () => {
        const bodyBytes = Buffer.concat(chunks);
        const kept = withoutHopByHop(answer.headers);
        delete kept['content-length'];
        socket.end(statusLine(answer) + Object.entries(kept).map(([k, v]) => `${k}: ${String(v)}\r\n`).join('') + `content-length: ${bodyBytes.length}\r\nconnection: close\r\n\r\n` + bodyBytes.toString('latin1'), 'latin1');
        resolve();
      });
    });
    upstream.once('error', (error) => reject(unreachable(api, error)));
    upstream.end();
  });
}

/**
 * The URL of `req` on the peer at `api`, from the request's path alone: an absolute-form request
 * line (`GET http://host/...`) or a `//host/...` path would otherwise pick the host the caller's
 * request and token go to. Such requests are refused before they get here (see the API server);
 * this refuses them again.
 */
export function target(api: string, req: Pick<IncomingMessage, 'url'>): URL {
  const path = requestPath(req.url);
  const url = new URL(api);
  const query = path.indexOf('?');
  url.pathname = query === -1 ? path : path.slice(0, query);
  url.search = query === -1 ? '' : path.slice(query);
  return url;
}

/** The request target when it is origin-form (`/path?query`); ERR_BAD_REQUEST for absolute-form, `//host` and anything else. */
export function requestPath(url: string | undefined): string {
  if (url === undefined || url[0] !== '/' || url[1] === '/' || url[1] === '\\') {
    throw new PeerError('ERR_BAD_REQUEST', 'the request target must be a path (origin-form): absolute URLs and `//host` paths are refused');
  }
  return url;
}

function relayHeaders(headers: IncomingHttpHeaders, extra: Record<string, string>, body: Buffer | undefined): IncomingHttpHeaders {
  const out = withoutHopByHop(headers);
  delete out.host;
  Object.assign(out, extra);
  if (body) out['content-length'] = String(body.length);
  return out;
}

/** A copy of `headers` without those that describe one connection only. */
function withoutHopByHop(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = { ...headers };
  stripHopByHop(out);
  return out;
}

function statusLine(answer: IncomingMessage): string {
  return `HTTP/1.1 ${answer.statusCode} ${answer.statusMessage ?? ''}\r\n`;
}

function rawHeaders(raw: string[]): string {
  let text = '';
  for (let i = 0; i + 1 < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return text;
}

function unreachable(api: string, error: Error): PeerError {
  return new PeerError('ERR_OWNER_UNREACHABLE', `the peer at ${api} did not answer: ${error.message}`, { cause: error });
}
