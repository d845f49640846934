import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WebSocket } from 'ws';
import type { Caller } from '../records/index.ts';
import { PeerError } from '../errors.ts';

/**
 * What a handler gets of the request. What it works on (sprites, the mesh, ...) it got when its
 * resource's route list was made: each list takes only the parts it uses.
 */
export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** The pattern's named groups, URL-decoded. */
  params: Record<string, string>;
  url: URL;
  /** Who sent the request (from its bearer token). */
  caller: Caller;
}

/**
 * Who may call a route, checked by the server before the handler runs (docs/API.md states each):
 * - `admin`: an admin token only (ERR_FORBIDDEN otherwise).
 * - `org`: the route names a sprite (`{name}`); a token of the sprite's org or an admin token. Another
 *   org's sprite answers exactly as a missing one (ERR_SPRITE_NOT_FOUND).
 * - `token`: any valid token; the handler scopes what it shows or makes to the token's org.
 * - `peer`: only another peer of the mesh, on its behalf (a drain's handoff). Peers call with their
 *   own admin token, so until peer links authenticate the caller as a peer, it is enforced as `admin`.
 */
export type Auth = 'admin' | 'org' | 'token' | 'peer';

/**
 * A plain HTTP route. A `name` group in a pattern is always a sprite name: the server answers
 * ERR_SPRITE_NOT_FOUND before the handler runs when that sprite belongs to an org the caller does not see.
 */
export interface Route {
  method: string;
  pattern: RegExp;
  /** Who may call it: required, so no route is added without a rule. */
  auth: Auth;
  handler: (ctx: RouteContext) => Promise<void> | void;
  /** Served from this peer's replica even when the sprite runs elsewhere (reads of its record). */
  anyPeer?: boolean;
  /** The route uses the sprite itself (waking it): the call counts as use for the idle timer while it lasts. */
  uses?: true | ((url: URL) => boolean);
}

/** What a WebSocket route's `open` gets of the upgrade request. */
export type WsContext = Pick<RouteContext, 'params' | 'url' | 'caller'>;

/** A WebSocket route: `open` prepares the sprite side and returns what to do with the socket. */
export interface WsRoute {
  method: 'GET';
  pattern: RegExp;
  auth: Auth;
  open: (ctx: WsContext) => Promise<(ws: WebSocket) => void>;
}

/** The pattern group of a sprite name in a route's path. */
export const NAME = '(?<name>[^/]+)';

/**
 * Throws unless every route's rule fits its path: a route that names a sprite is `org`, `admin` or
 * `peer` (never plain `token`, which would skip the org check), and an `org` route names a sprite.
 */
export function checkRules(routes: readonly { method: string; pattern: RegExp; auth: Auth }[]): void {
  for (const route of routes) {
    const named = route.pattern.source.includes(NAME);
    if (named && route.auth === 'token') throw new Error(`${route.method} ${route.pattern.source} names a sprite: its rule cannot be 'token'`);
    if (!named && route.auth === 'org') throw new Error(`${route.method} ${route.pattern.source} names no sprite: its rule cannot be 'org'`);
  }
}

/**
 * The route for `method` on `path` and its decoded params: ERR_METHOD_NOT_ALLOWED when the path
 * exists with other methods only, ERR_NOT_FOUND when no route has it.
 */
export function match<R extends { method: string; pattern: RegExp }>(routes: readonly R[], method: string, path: string): { route: R; params: Record<string, string> } {
  let pathMatched = false;
  for (const route of routes) {
    const found = route.pattern.exec(path);
    if (!found) continue;
    pathMatched = true;
    if (route.method !== method) continue;
    const params: Record<string, string> = {};
    for (const [key, value] of Object.entries(found.groups ?? {})) params[key] = decoded(value);
    return { route, params };
  }
  if (pathMatched) throw new PeerError('ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
  throw new PeerError('ERR_NOT_FOUND', `no route ${path}`);
}

/** A path segment URL-decoded; a malformed escape (`%zz`) is the caller's error, not the server's. */
function decoded(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new PeerError('ERR_BAD_REQUEST', `malformed escape in path segment ${JSON.stringify(value.slice(0, 64))}`);
  }
}
