import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { routeTable, type RouteParts } from '../../node/api/routes/index.ts';

const API_MD = new URL('../../docs/API.md', import.meta.url);

/** A route's path as docs/API.md writes it, every parameter as `{}`: `/v1/sprites/{}/exec`. */
function docPath(pattern: RegExp): string {
  const path = pattern.source.replace(/^\^/, '').replace(/\$$/, '').replace(/\(\?<\w+>\[\^\/\]\+\)/g, '{}').replace(/\\\//g, '/');
  assert.doesNotMatch(path, /[()[\]\\^$*+?|]/, `route pattern ${pattern.source} has a shape this test cannot name`);
  return path;
}

/** Every route the API serves, as `METHOD path` (`GET path (WebSocket)` for upgrades). */
function served(): Set<string> {
  // Route lists only close over their parts; none is called to build the table.
  const parts = new Proxy({}, { get: () => ({}) }) as RouteParts;
  const { routes, wsRoutes } = routeTable(parts);
  return new Set([
    'GET /v1/health',
    ...routes.map((r) => `${r.method} ${docPath(r.pattern)}`),
    ...wsRoutes.map((r) => `${r.method} ${docPath(r.pattern)} (WebSocket)`),
  ]);
}

/** Every route docs/API.md documents: the first cell of a table row, `POST`/`PUT /v1/...` included. */
function documented(text: string): Set<string> {
  const found = new Set<string>();
  for (const line of text.split('\n')) {
    const cell = /^\| ((?:`[A-Z]+`\/)*`[A-Z]+ \/v1[^`]*`(?: \(WebSocket\))?) \|/.exec(line)?.[1];
    if (cell === undefined) continue;
    const ws = cell.endsWith('(WebSocket)') ? ' (WebSocket)' : '';
    const words = cell.replace(' (WebSocket)', '').replaceAll('`', '');
    const [methods = '', path = ''] = words.split(' ');
    for (const method of methods.split('/')) found.add(`${method} ${path.replace(/\{[^}]*\}/g, '{}')}${ws}`);
  }
  return found;
}

test('docs/API.md documents every route the API serves, and no other', async () => {
  const routes = served();
  const docs = documented(await readFile(API_MD, 'utf8'));
  assert.ok(routes.size > 40, `the route table has ${routes.size} routes`);
  assert.deepEqual([...routes].filter((r) => !docs.has(r)).sort(), [], 'served but not documented');
  assert.deepEqual([...docs].filter((r) => !routes.has(r)).sort(), [], 'documented but not served');
});
