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
 * A plain HTTP route. A `name` group in a pattern is always a sprite name: the server answers
 * ERR_SPRITE_NOT_FOUND before the handler runs when that sprite belongs to an org the caller does not see.
 */
export interface Route {
  method: string;
  pattern: RegExp;
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
  open: (ctx: WsContext) => Promise<(ws: WebSocket) => void>;
}

/** The pattern group of a sprite name in a route's path. */
export const NAME = '(?<name>[^/]+)';

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
    for (const [key, value] of Object.entries(found.groups ?? {})) params[key] = decodeURIComponent(value);
    return { route, params };
  }
  if (pathMatched) throw new PeerError('ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
  throw new PeerError('ERR_NOT_FOUND', `no route ${path}`);
}
