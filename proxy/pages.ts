import { STATUS_CODES, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import { ProxyError } from './errors.ts';

/** A response the proxy can write: HTTP/1.1 or the HTTP/2 compatibility API. */
export type AnyResponse = ServerResponse | Http2ServerResponse;

/** Writes a complete small response (status, headers, body) to either kind of response. */
export function respond(res: AnyResponse, status: number, headers: Record<string, string | number>, body = ''): void {
  // Both kinds accept this call; their overload sets merely differ in shape.
  (res as ServerResponse).writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Writes an error as a small page: HTML for browsers, else JSON `{error: code, message}` like the API. */
export function sendErrorPage(headers: IncomingHttpHeaders, res: AnyResponse, error: ProxyError): void {
  if (res.headersSent) {
    // Part of an answer has gone out: the only honest signal left is to cut the stream.
    res.destroy();
    return;
  }
  const { body, type } = renderError(headers, error);
  const out: Record<string, string | number> = {
    'content-type': type, 'cache-control': 'no-store', 'x-sprite-error': error.code,
  };
  if (error.retryAfter !== undefined) out['retry-after'] = error.retryAfter;
  if (error.code === 'ERR_PROXY_UNAUTHORIZED') out['www-authenticate'] = 'Bearer realm="sprite"';
  respond(res, error.status, out, body);
}

/** Answers an upgrade (WebSocket) request that cannot be proxied with a plain HTTP/1.1 error and closes. */
export function sendErrorOnSocket(headers: IncomingHttpHeaders, socket: Duplex, error: ProxyError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const { body, type } = renderError(headers, error);
  const lines = [
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}`, `content-type: ${type}`, `content-length: ${Buffer.byteLength(body)}`,
    'cache-control: no-store', `x-sprite-error: ${error.code}`, 'connection: close',
  ];
  if (error.retryAfter !== undefined) lines.push(`retry-after: ${error.retryAfter}`);
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

/** The page body for an error: HTML when the client prefers it, JSON otherwise. */
export function renderError(headers: IncomingHttpHeaders, error: ProxyError): { body: string; type: string } {
  if (!(headers.accept ?? '').includes('text/html')) {
    return { body: `${JSON.stringify({ error: error.code, message: error.message })}\n`, type: 'application/json' };
  }
  const title = `${error.status} ${STATUS_CODES[error.status] ?? 'Error'}`;
  const hint = error.code === 'ERR_PROXY_UNAUTHORIZED'
    ? '<p>Sign in by opening <code>/__sprite/login?token=YOUR_API_TOKEN</code> on this address, or send <code>Authorization: Bearer YOUR_API_TOKEN</code>.</p>'
    : '';
  const body = `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body style="font-family:sans-serif;max-width:40em;margin:3em auto">`
    + `<h1>${title}</h1><p>${escapeHtml(error.message)}</p>${hint}<p><small>${error.code}</small></p></body></html>\n`;
  return { body, type: 'text/html; charset=utf-8' };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
