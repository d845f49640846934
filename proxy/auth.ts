import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { AUTH_COOKIE, authCookie, bearerToken, stripAuthCookie } from './headers.ts';
import { respond, type AnyResponse } from './pages.ts';

/** How a sprite's URL is protected: `sprite` needs a valid API token, `public` lets anyone in. */
export type UrlAuth = 'sprite' | 'public';

/** The modes `sprite url update --auth` accepts. */
export const URL_AUTH_MODES: readonly UrlAuth[] = ['sprite', 'public'];

/** What the proxy needs to check credentials: the mesh's API tokens. */
export interface TokenCheck {
  /** True when `token` is a valid (registered, not revoked) API token of the mesh. */
  valid(token: string): boolean;
  /** True when `hash` is the SHA-256 (hex) of a valid API token: what the login cookie holds. */
  validHash(hash: string): boolean;
}

/**
 * Remembers valid tokens (and cookie hashes) for `ttlMs`, so a busy URL does not hash and look up
 * its token on every request; a revoked token stops working within `ttlMs`. Failures are never
 * remembered, and the cache holds at most `max` entries (it is emptied when full).
 */
export function cachedTokenCheck(tokens: TokenCheck, ttlMs = 2000, max = 1024): TokenCheck {
  const valid = new Map<string, number>();
  const validHash = new Map<string, number>();
  const check = (cache: Map<string, number>, key: string, lookup: (key: string) => boolean): boolean => {
    const now = performance.now();
    const until = cache.get(key);
    if (until !== undefined && until > now) return true;
    if (!lookup(key)) {
      cache.delete(key);
      return false;
    }
    if (cache.size >= max) cache.clear();
    cache.set(key, now + ttlMs);
    return true;
  };
  return {
    valid: (token) => check(valid, token, (key) => tokens.valid(key)),
    validHash: (hash) => check(validHash, hash, (key) => tokens.validHash(key)),
  };
}

/** Path prefix the proxy keeps for itself on every sprite URL. */
export const RESERVED_PREFIX = '/__sprite/';

/** How long the login cookie lasts, in seconds (30 days). */
const COOKIE_MAX_AGE = 30 * 24 * 3600;

/**
 * Whether a request may reach the sprite: always for `public`; for `sprite` (and any unknown mode,
 * which fails closed) with a valid bearer token or login cookie.
 */
export function authorized(mode: string, headers: IncomingHttpHeaders, tokens: TokenCheck): boolean {
  if (mode === 'public') return true;
  const bearer = bearerToken(headers);
  if (bearer !== undefined && tokens.valid(bearer)) return true;
  const cookie = authCookie(headers);
  return cookie !== undefined && /^[0-9a-f]{64}$/.test(cookie) && tokens.validHash(cookie);
}

/**
 * Removes the proxy's own credentials before a request reaches the sprite: the login cookie always,
 * and in `sprite` mode the Authorization header when it carries a valid API token (the sprite's
 * code must never see a token that can drive the API).
 */
export function stripCredentials(mode: string, headers: IncomingHttpHeaders, tokens: TokenCheck): void {
  stripAuthCookie(headers);
  if (mode === 'public') return;
  const bearer = bearerToken(headers);
  if (bearer !== undefined && tokens.valid(bearer)) delete headers.authorization;
}

/**
 * Serves `/__sprite/login?token=T[&next=/path]`: with a valid token, sets an HttpOnly cookie holding
 * the token's hash (scoped to this sprite's host) and redirects to `next`; `/__sprite/logout` clears
 * it. Returns false for other reserved paths, which the caller answers with 404.
 */
export function serveReserved(url: string, res: AnyResponse, tokens: TokenCheck, secure: boolean): boolean {
  const parsed = new URL(url, 'http://sprite');
  const next = safeNext(parsed.searchParams.get('next'));
  const attributes = `Path=/; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
  if (parsed.pathname === `${RESERVED_PREFIX}logout`) {
    respond(res, 303, { location: next, 'set-cookie': `${AUTH_COOKIE}=; ${attributes}; Max-Age=0`, 'cache-control': 'no-store' });
    return true;
  }
  if (parsed.pathname !== `${RESERVED_PREFIX}login`) return false;
  const token = parsed.searchParams.get('token') ?? '';
  if (!token || token.length > 512 || !tokens.valid(token)) {
    const body = 'the token is missing or not valid in this mesh\n';
    respond(res, 401, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-sprite-error': 'ERR_PROXY_UNAUTHORIZED' }, body);
    return true;
  }
  const hash = createHash('sha256').update(token).digest('hex');
  // Referrer-Policy: the token is in this URL; the next page must not leak it onwards.
  respond(res, 303, {
    location: next, 'set-cookie': `${AUTH_COOKIE}=${hash}; ${attributes}; Max-Age=${COOKIE_MAX_AGE}`, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer',
  });
  return true;
}

/** Only same-origin paths: an open redirect would let a link send a signed-in user anywhere. */
function safeNext(next: string | null): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/';
  return next.replace(/[\r\n]/g, '');
}
