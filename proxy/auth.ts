import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { cookieUsable, safeNext } from './browser.ts';
import { bearerToken, cookieValues, stripCookies } from './headers.ts';
import { respond, type AnyResponse } from './pages.ts';
import { SESSION_COOKIE, SESSION_TTL_S, type Scheme, type SessionSigner } from './session.ts';

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
  /** The same for `hash`, the SHA-256 (hex) of a token: what a signed login session names. */
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

/** Both login cookie names: stripped from every request, whichever listener it came through. */
const SESSION_COOKIES = Object.values(SESSION_COOKIE);

/** What URL auth reads besides the headers: the tokens, the session key, and the origin the client asked for. */
export interface AuthContext {
  tokens: TokenCheck;
  sessions: SessionSigner;
  /** The scheme and Host the client used (from a signed hop, what the first peer saw). */
  scheme: Scheme;
  host: string;
  method: string | undefined;
}

/** Whether a token owner may open a sprite: an admin, or a token of the sprite's org. */
export function admits(sprite: { org: string }, owner: TokenOwner | undefined): boolean {
  return owner !== undefined && (owner.admin || owner.org === sprite.org);
}

/**
 * Whether a request may reach the sprite: always for `public`; for `sprite` (and any unknown mode,
 * which fails closed) with a bearer token, or a login session for this sprite and scheme, of the
 * sprite's org or of an admin. A session counts only as far as `cookieUsable` allows (not from a
 * sibling sprite's page), and every cookie of its name is tried, so a planted duplicate can
 * neither shadow a valid session nor pass for one.
 */
export function authorized(sprite: { name: string; urlAuth: string; org: string }, headers: IncomingHttpHeaders, auth: AuthContext): boolean {
  if (sprite.urlAuth === 'public') return true;
  const bearer = bearerToken(headers);
  if (bearer !== undefined && admits(sprite, auth.tokens.owner(bearer))) return true;
  if (headers.cookie === undefined) return false;
  const values = cookieValues(headers, SESSION_COOKIE[auth.scheme]);
  if (values.length === 0 || !cookieUsable(headers, auth.method, auth)) return false;
  for (const value of values) {
    const hash = auth.sessions.verify(value, sprite.name, auth.scheme);
    if (hash !== undefined && admits(sprite, auth.tokens.ownerOfHash(hash))) return true;
  }
  return false;
}

/** Whether the request's bearer token is an admin's: only admins learn that a name is unknown (404, not 401). */
export function callerIsAdmin(headers: IncomingHttpHeaders, tokens: TokenCheck): boolean {
  const bearer = bearerToken(headers);
  return bearer !== undefined && tokens.owner(bearer)?.admin === true;
}

/**
 * Removes the mesh's credentials before a request reaches any sprite, public or not: both login
 * cookies always, and the Authorization header when it carries a valid API token of any org, in
 * whatever form (`Bearer T`, `Basic base64(T:...)` or `(...:T)`, a bare `T`, a word or parameter
 * of any scheme). Any other Authorization (an app's own scheme) passes unchanged.
 */
export function stripCredentials(headers: IncomingHttpHeaders, tokens: TokenCheck): void {
  stripCookies(headers, SESSION_COOKIES);
  const value = headers.authorization;
  if (value !== undefined && carriesToken(value, tokens)) delete headers.authorization;
}

/**
 * Whether an Authorization value holds a valid API token: the credential after the scheme (the
 * usual `Bearer T`, looked up first so the common case costs one cached lookup), then every word
 * of it (`Bearer T extra`, lists, `key="T"` parameters), the bare value, and for `Basic` the decoded user and password.
 */
function carriesToken(value: string, tokens: TokenCheck): boolean {
  const valid = (candidate: string): boolean => candidate !== '' && candidate.length <= 512 && tokens.owner(candidate) !== undefined;
  const space = value.indexOf(' ');
  const credential = space === -1 ? value : value.slice(space + 1).trim();
  if (valid(credential)) return true;
  const candidates = value.split(/[\s,;="]+/).slice(0, 12);
  if (space !== -1) candidates.push(value);
  if (space !== -1 && value.slice(0, space).toLowerCase() === 'basic') {
    const decoded = Buffer.from(credential, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    candidates.push(decoded);
    if (colon !== -1) candidates.push(decoded.slice(0, colon), decoded.slice(colon + 1));
  }
  return candidates.some((candidate) => candidate !== credential && valid(candidate));
}

/** What a login needs to know about the URL it is served on. */
export interface LoginTarget {
  /** The sprite's name (from Host), the scheme it was asked over, and its row when the mesh knows it. */
  name: string;
  scheme: Scheme;
  sprite: { org: string } | undefined;
}

/**
 * Serves `/__sprite/login?token=T[&next=/path]`: with a token that opens this sprite, sets an
 * HttpOnly cookie holding a signed session for this sprite and scheme (never the token, nor its
 * stored hash alone) and redirects to `next`; `/__sprite/logout` clears it. Returns false for other
 * reserved paths, which the caller answers with 404.
 */
export function serveReserved(url: string, res: AnyResponse, target: LoginTarget, tokens: TokenCheck, sessions: SessionSigner): boolean {
  const parsed = new URL(url, 'http://sprite');
  const next = safeNext(parsed.searchParams.get('next'));
  const name = SESSION_COOKIE[target.scheme];
  // `__Host-` on HTTPS: Secure, Path=/ and no Domain, so no sibling can set or shadow it.
  const attributes = `Path=/; HttpOnly; SameSite=Lax${target.scheme === 'https' ? '; Secure' : ''}`;
  if (parsed.pathname === `${RESERVED_PREFIX}logout`) {
    respond(res, 303, { location: next, 'set-cookie': `${name}=; ${attributes}; Max-Age=0`, 'cache-control': 'no-store' });
    return true;
  }
  if (parsed.pathname !== `${RESERVED_PREFIX}login`) return false;
  const token = parsed.searchParams.get('token') ?? '';
  // A token that does not open this sprite is refused like a wrong one: the answer tells nothing of the name.
  if (!token || token.length > 512 || target.sprite === undefined || !admits(target.sprite, tokens.owner(token))) {
    const body = 'the token is missing or does not open this sprite\n';
    respond(res, 401, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-sprite-error': 'ERR_PROXY_UNAUTHORIZED' }, body);
    return true;
  }
  const session = sessions.issue(createHash('sha256').update(token).digest('hex'), target.name, target.scheme);
  // Referrer-Policy: the token is in this URL; the next page must not leak it onwards.
  respond(res, 303, {
    location: next, 'set-cookie': `${name}=${session}; ${attributes}; Max-Age=${SESSION_TTL_S}`, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer',
  });
  return true;
}
