import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { AUTH_COOKIE, authCookie, bearerToken, stripAuthCookie } from './headers.ts';
import { respond, type AnyResponse } from './pages.ts';

/** How a sprite's URL is protected: `sprite` needs an API token of the sprite's org (or an admin token), `public` lets anyone in. */
export type UrlAuth = 'sprite' | 'public';

/** The modes `sprite url update --auth` accepts. */
export const URL_AUTH_MODES: readonly UrlAuth[] = ['sprite', 'public'];

/** Whom a valid API token belongs to, as far as sprite URLs care. */
export interface TokenOwner {
  org: string;
  /** Admin tokens open every org's sprites. */
  admin: boolean;
}

/** What the proxy needs to check credentials: the mesh's API tokens. */
export interface TokenCheck {
  /** The owner of `token` when it is a valid (registered, not revoked) API token of the mesh, else undefined. */
  owner(token: string): TokenOwner | undefined;
  /** The same for `hash`, the SHA-256 (hex) of a token: what the login cookie holds. */
  ownerOfHash(hash: string): TokenOwner | undefined;
  /** Calls `listener` after any change to the tokens (a revocation); returns the unsubscribe. Caches rely on it. */
  onChange?(listener: () => void): () => void;
}

/** A token check that remembers answers; `close` stops following token changes. */
export interface CachedTokenCheck extends TokenCheck {
  close(): void;
}

/**
 * Remembers owners of valid tokens (and cookie hashes) for `ttlMs`, so a busy URL does not hash and
 * look up its token on every request. Any token change empties the cache (when `tokens` reports
 * changes), so a revocation counts as soon as it reaches this peer; `ttlMs` only bounds how long a
 * missed change could keep a token alive. Failures are never remembered, and the cache holds at most
 * `max` entries (it is emptied when full).
 */
export function cachedTokenCheck(tokens: TokenCheck, ttlMs = 2000, max = 1024): CachedTokenCheck {
  const byToken = new Map<string, { owner: TokenOwner; until: number }>();
  const byHash = new Map<string, { owner: TokenOwner; until: number }>();
  const check = (cache: typeof byToken, key: string, lookup: (key: string) => TokenOwner | undefined): TokenOwner | undefined => {
    const now = performance.now();
    const hit = cache.get(key);
    if (hit !== undefined && hit.until > now) return hit.owner;
    const owner = lookup(key);
    if (!owner) {
      cache.delete(key);
      return undefined;
    }
    if (cache.size >= max) cache.clear();
    cache.set(key, { owner, until: now + ttlMs });
    return owner;
  };
  const unsubscribe = tokens.onChange?.(() => {
    byToken.clear();
    byHash.clear();
  });
  return {
    owner: (token) => check(byToken, token, (key) => tokens.owner(key)),
    ownerOfHash: (hash) => check(byHash, hash, (key) => tokens.ownerOfHash(key)),
    close: () => unsubscribe?.(),
  };
}

/** Path prefix the proxy keeps for itself on every sprite URL. */
export const RESERVED_PREFIX = '/__sprite/';

/** How long the login cookie lasts, in seconds (30 days). */
const COOKIE_MAX_AGE = 30 * 24 * 3600;

/**
 * Whether a request may reach the sprite: always for `public`; for `sprite` (and any unknown mode,
 * which fails closed) with a bearer token or login cookie of the sprite's org, or of an admin.
 */
export function authorized(sprite: { urlAuth: string; org: string }, headers: IncomingHttpHeaders, tokens: TokenCheck): boolean {
  if (sprite.urlAuth === 'public') return true;
  const admits = (owner: TokenOwner | undefined): boolean => owner !== undefined && (owner.admin || owner.org === sprite.org);
  const bearer = bearerToken(headers);
  if (bearer !== undefined && admits(tokens.owner(bearer))) return true;
  const cookie = authCookie(headers);
  return cookie !== undefined && /^[0-9a-f]{64}$/.test(cookie) && admits(tokens.ownerOfHash(cookie));
}

/**
 * Removes the proxy's own credentials before a request reaches the sprite: the login cookie always,
 * and in `sprite` mode the Authorization header when it carries a valid API token of any org (the
 * sprite's code must never see a token that can drive the API).
 */
export function stripCredentials(mode: string, headers: IncomingHttpHeaders, tokens: TokenCheck): void {
  stripAuthCookie(headers);
  if (mode === 'public') return;
  const bearer = bearerToken(headers);
  if (bearer !== undefined && tokens.owner(bearer)) delete headers.authorization;
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
  if (!token || token.length > 512 || !tokens.owner(token)) {
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
