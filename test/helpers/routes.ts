import assert from 'node:assert/strict';
import { routeTable, type RouteParts } from '../../node/api/routes/index.ts';
import type { Auth } from '../../node/api/router.ts';

/** A route's path as docs/API.md writes it, every parameter as `{}`: `/v1/sprites/{}/exec`. */
export function docPath(pattern: RegExp): string {
  const path = pattern.source.replace(/^\^/, '').replace(/\$$/, '').replace(/\(\?<\w+>\[\^\/\]\+\)/g, '{}').replace(/\\\//g, '/');
  assert.doesNotMatch(path, /[()[\]\\^$*+?|]/, `route pattern ${pattern.source} has a shape this test cannot name`);
  return path;
}

/** Every route of the API's table as `METHOD path` (`GET path (WebSocket)` for upgrades), with its declared rule. */
export function servedRoutes(): Map<string, Auth> {
  // Route lists only close over their parts; none is called to build the table.
  const parts = new Proxy({}, { get: () => ({}) }) as RouteParts;
  const { routes, wsRoutes } = routeTable(parts);
  return new Map([
    ...routes.map((r) => [`${r.method} ${docPath(r.pattern)}`, r.auth] as const),
    ...wsRoutes.map((r) => [`${r.method} ${docPath(r.pattern)} (WebSocket)`, r.auth] as const),
  ]);
}
