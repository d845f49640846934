import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { stripHopByHop } from '../../proxy/index.ts';
import { ApiError } from './errors.ts';

/**
 * Marks a request one peer hands to another. The receiver serves it itself and never forwards it
 * again, so a stale view of who owns a sprite costs an error, not a loop. It grants nothing: the
 * receiver authenticates the caller's own Authorization header, which travels unchanged.
 */
const HOP_HEADER = 'x-sprite-hop';

/** What the receiving peer is asked to do. */
export type HopRole = 'owner' | 'arbiter' | 'place';

/** Requests between peers reuse connections. */
const agent = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16 });

/** The role a request was forwarded with, or undefined when it came from a client. */
export function hopRole(req: IncomingMessage): HopRole | undefined {
  const value = req.headers[HOP_HEADER];
  return value === 'owner' || value === 'arbiter' || value === 'place' ? value : undefined;
}

/**
 * Sends a plain HTTP request on to another peer's API and streams its answer back. Throws
 * ERR_OWNER_UNREACHABLE (nothing sent to the client yet) when that peer cannot be reached or,
 * with `answerWithinMs`, does not start answering in time (a frozen or overloaded peer).
 */
export function forwardRequest(
  req: IncomingMessage, res: ServerResponse, api: string, role: HopRole, options: { body?: Buffer; answerWithinMs?: number } = {},
): Promise<void> {
  const { body, answerWithinMs } = options;
  return new Promise((resolve, reject) => {
    const upstream = http.request(target(api, req), { method: req.method, headers: hopHeaders(req.headers, role, body), agent });
    const timer = answerWithinMs === undefined ? undefined : setTimeout(() => upstream.destroy(new Error(`no answer within ${answerWithinMs} ms`)), answerWithinMs);
    // A peer that takes on a slow job says so at once with 102 Processing (see the create route).
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

/** Sends a WebSocket upgrade on to another peer's API and splices the two sockets once it agrees. */
export function forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, api: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const headers: IncomingHttpHeaders = { ...req.headers, [HOP_HEADER]: 'owner' };
    const upstream = http.request(target(api, req), { method: req.method, headers });
    upstream.once('upgrade', (answer, upstreamSocket, upstreamHead) => {
      socket.write(statusLine(answer) + rawHeaders(answer.rawHeaders) + '\r\n');
      if (upstreamHead.length > 0) socket.write(upstreamHead);
      if (head.length > 0) upstreamSocket.write(head);
      upstreamSocket.on('error', () => socket.destroy());
      socket.on('error', () => upstreamSocket.destroy());
      upstreamSocket.pipe(socket).pipe(upstreamSocket);
      resolve();
    });
    // The owner refused (404, 409, ...): relay its answer as plain HTTP.
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

function target(api: string, req: IncomingMessage): URL {
  return new URL(req.url ?? '/', api);
}

function hopHeaders(headers: IncomingHttpHeaders, role: HopRole, body: Buffer | undefined): IncomingHttpHeaders {
  const out = withoutHopByHop(headers);
  delete out.host;
  out[HOP_HEADER] = role;
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

function unreachable(api: string, error: Error): ApiError {
  return new ApiError('ERR_OWNER_UNREACHABLE', `the peer at ${api} did not answer: ${error.message}`, { cause: error });
}
