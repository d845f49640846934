import type { IncomingHttpHeaders } from 'node:http';
import type { Scheme } from './session.ts';

/**
 * Whether a request that carries the login cookie may use it. Sibling sprites share the site
 * (`*.<domain>`), so SameSite=Lax sends the cookie along with requests that one sprite's page makes
 * to another; only the browser's fetch metadata tells them apart. The cookie counts for
 * same-origin requests, for what the user opened directly (`Sec-Fetch-Site: none`), and for
 * top-level GET/HEAD navigations (a link followed from anywhere); not for a subrequest, a frame, a
 * form POST or a WebSocket from another origin. A client that sends no fetch metadata (curl, old
 * browsers) is judged by `Origin`: absent or equal to the sprite's own origin.
 */
export function cookieUsable(headers: IncomingHttpHeaders, method: string | undefined, origin: { scheme: Scheme; host: string }): boolean {
  const site = headers['sec-fetch-site'];
  if (typeof site === 'string') {
    if (site === 'same-origin' || site === 'none') return true;
    const dest = headers['sec-fetch-dest'];
    return headers['sec-fetch-mode'] === 'navigate' && (dest === undefined || dest === 'document') && (method === 'GET' || method === 'HEAD');
  }
  const from = headers.origin;
  if (from === undefined) return true;
  return typeof from === 'string' && from.toLowerCase() === `${origin.scheme}://${origin.host.toLowerCase()}`;
}

const BASE = 'http://next.invalid';

/**
 * The `next` of a login or logout as a same-origin path, or `/`. An open redirect would let a link
 * send a signed-in user anywhere, and browsers read a Location generously: they drop tabs and
 * newlines, take `\` for `/`, and treat `//host` as another origin. So the value must start with
 * one `/`, hold no control characters, spaces or backslashes, and still be a path of this origin
 * once a URL parser has normalized it (`/.//evil` becomes `//evil`); the normalized form is what
 * goes out.
 */
export function safeNext(next: string | null): string {
  if (!next || next.length > 2048 || next[0] !== '/' || /[\x00-\x20\x7f\\]/.test(next)) return '/';
  let url: URL;
  try {
    url = new URL(next, BASE);
  } catch {
    return '/';
  }
  const path = `${url.pathname}${url.search}${url.hash}`;
  if (url.origin !== BASE || !path.startsWith('/') || path.startsWith('//')) return '/';
  return path;
}
