import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { servedRoutes } from '../helpers/routes.ts';

const API_MD = new URL('../../docs/API.md', import.meta.url);

/** Every route the API serves, as `METHOD path` (`GET path (WebSocket)` for upgrades), with its rule (router.ts `Auth`). */
function served(): Map<string, string> {
  return new Map([['GET /v1/health', 'none'], ...servedRoutes()]);
}

/** Every route docs/API.md documents, with the rule its `auth` cell states: the first two cells of a table row, `POST`/`PUT /v1/...` included. */
function documented(text: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of text.split('\n')) {
    const cells = /^\| ((?:`[A-Z]+`\/)*`[A-Z]+ \/v1[^`]*`(?: \(WebSocket\))?)[^|]*\| ([a-z]*) \|/.exec(line);
    if (cells === null) continue;
    const [, cell = '', rule = ''] = cells;
    const ws = cell.endsWith('(WebSocket)') ? ' (WebSocket)' : '';
    const words = cell.replace(' (WebSocket)', '').replaceAll('`', '');
    const [methods = '', path = ''] = words.split(' ');
    for (const method of methods.split('/')) found.set(`${method} ${path.replace(/\{[^}]*\}/g, '{}')}${ws}`, rule);
  }
  return found;
}

test('docs/API.md documents every route the API serves, and no other, with the rule the route declares', async () => {
  const routes = served();
  const docs = documented(await readFile(API_MD, 'utf8'));
  assert.ok(routes.size > 40, `the route table has ${routes.size} routes`);
  assert.deepEqual([...routes.keys()].filter((r) => !docs.has(r)).sort(), [], 'served but not documented');
  assert.deepEqual([...docs.keys()].filter((r) => !routes.has(r)).sort(), [], 'documented but not served');
  for (const [route, rule] of routes) assert.equal(docs.get(route), rule, `the auth cell of ${route}`);
});
