import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

const run = promisify(execFile);

/** A JSON request to a peer's API with a given token. */
async function call(peer: PeerProcess, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${peer.url}${path}`, {
    method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** curl against a sprite URL (curl resolves *.localhost to loopback); status and the proxy's error header. */
async function curl(url: string, ca: string, headers: string[] = []): Promise<{ status: number; body: string; error: string }> {
  const args = ['-sS', '--max-time', '20', '--cacert', ca, '-o', '-', '-w', '\n%{http_code} %header{x-sprite-error}', url, ...headers.flatMap((h) => ['-H', h])];
  const { stdout } = await run('curl', args);
  const cut = stdout.lastIndexOf('\n');
  const [status, error] = stdout.slice(cut + 1).split(' ');
  return { status: Number(status), body: stdout.slice(0, cut), error: error ?? '' };
}

const bearer = (token: string): string => `authorization: Bearer ${token}`;

/** Signs in at a sprite URL with `token`; the `name=value` of the session cookie, or undefined when refused. */
async function login(url: string, ca: string, token: string): Promise<string | undefined> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '20', '--cacert', ca, '-o', '/dev/null', '-D', '-', new URL(`/__sprite/login?token=${token}`, url).href]);
  return /^set-cookie: ([^;\r\n]+)/im.exec(stdout)?.[1];
}

describe('orgs and tokens on two real peers', () => {
  let a: PeerProcess;
  let b: PeerProcess;
  let acme = '';
  let globex = '';
  let ca = '';
  let urlOnA = '';
  let urlOnB = '';

  before(async () => {
    a = await startPeer({ poolDepth: 1 });
    b = await startPeer({ poolDepth: 0, join: a });
    // Each peer publishes its own admin token; wait until A has B's, so counts below are stable.
    await eventually(async () => (await a.api('GET', '/v1/tokens')).body.tokens.length === 2, 20_000, "B's token on A");
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
    if (b) await removeDataDir(b.dataDir);
    if (a) await removeDataDir(a.dataDir);
  });

  test('an admin creates orgs and tokens; names and bodies are validated', async () => {
    for (const name of ['acme', 'globex']) {
      const created = await a.cli(['org', 'create', name]);
      assert.equal(created.code, 0, created.stderr);
      assert.equal(created.stdout, `${name}\n`);
    }
    // Two live tokens in the admin org: each peer's own.
    const listed = await a.cli(['org', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^ORG\s+SPRITES\s+TOKENS\s+CREATED\nacme\s+0\s+0\s+\S+\nadmin\s+0\s+2\s+\S+\nglobex\s+0\s+0\s+\S+\n$/);
    assert.equal((await a.api('POST', '/v1/orgs', { name: 'acme' })).body.error, 'ERR_ORG_EXISTS');
    assert.equal((await a.api('POST', '/v1/orgs', { name: 'admin' })).status, 409);
    const bad = await a.api('POST', '/v1/orgs', { name: 'Not_Valid' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, 'ERR_BAD_REQUEST');
    assert.match(bad.body.message, /^org name must be 1-63 characters/);
    assert.match((await a.api('POST', '/v1/orgs', { name: 'x', plan: 'pro' })).body.message, /plan is not a known field/);
    assert.equal((await a.api('POST', '/v1/tokens', { name: 't1', org: 'nobody' })).body.error, 'ERR_ORG_NOT_FOUND');
    assert.equal((await a.api('POST', '/v1/tokens', { name: 't1', org: 'acme', admin: 'yes' })).status, 400);
    assert.match((await a.api('POST', '/v1/tokens', { name: 'peer-x', org: 'acme' })).body.message, /belong to peers/);

    const fromCli = await a.cli(['token', 'create', 'acme-dev', '--org', 'acme']);
    assert.equal(fromCli.code, 0, fromCli.stderr);
    acme = fromCli.stdout.trim();
    assert.match(acme, /^[A-Za-z0-9_-]{32}$/);
    // Created on B, with B's admin token: every peer issues tokens.
    const fromApi = await call(b, b.token, 'POST', '/v1/tokens', { name: 'globex-dev', org: 'globex' });
    assert.equal(fromApi.status, 201, JSON.stringify(fromApi.body));
    assert.deepEqual(Object.keys(fromApi.body).sort(), ['admin', 'created', 'name', 'org', 'revoked', 'token']);
    assert.equal(fromApi.body.org, 'globex');
    assert.equal(fromApi.body.admin, false);
    globex = fromApi.body.token;
    assert.equal((await a.api('POST', '/v1/tokens', { name: 'acme-dev', org: 'globex' })).body.error, 'ERR_TOKEN_EXISTS');
  });

  test('a token made on one peer works on the other; listings never show secrets or hashes', async () => {
    await eventually(async () => (await call(b, acme, 'GET', '/v1/sprites')).status === 200, 20_000, 'the acme token on B');
    await eventually(async () => (await call(a, globex, 'GET', '/v1/sprites')).status === 200, 20_000, 'the globex token on A');
    const listed = await a.api('GET', '/v1/tokens');
    assert.equal(listed.status, 200);
    const byName = new Map(listed.body.tokens.map((t: { name: string }) => [t.name, t]));
    assert.deepEqual(byName.get('acme-dev'), { name: 'acme-dev', org: 'acme', admin: false, created: (byName.get('acme-dev') as { created: string }).created, revoked: false });
    // Each peer's own token is an admin token of the admin org.
    assert.equal(listed.body.tokens.filter((t: { name: string; admin: boolean; org: string }) => t.name.startsWith('peer-') && t.admin && t.org === 'admin').length, 2);
    const text = JSON.stringify(listed.body);
    for (const secret of [acme, globex, a.token, b.token]) {
      assert.ok(!text.includes(secret));
      assert.ok(!text.includes(createHash('sha256').update(secret).digest('hex')));
    }
    const table = await a.cli(['token', 'list']);
    assert.match(table.stdout, /acme-dev\s+acme\s+no\s+\S+\s+active/);
  });

  test('non-admin tokens get 403 on org and token management', async () => {
    for (const [method, path, body] of [['GET', '/v1/orgs'], ['POST', '/v1/orgs', { name: 'mine' }], ['GET', '/v1/tokens'], ['POST', '/v1/tokens', { name: 'more', org: 'acme' }], ['DELETE', '/v1/tokens/globex-dev']] as const) {
      const answer = await call(a, acme, method, path, body);
      assert.equal(answer.status, 403, `${method} ${path}`);
      assert.equal(answer.body.error, 'ERR_FORBIDDEN');
    }
    const cli = await a.cli(['token', 'create', 'sneaky', '--admin'], { env: { SPRITE_TOKEN: acme } });
    assert.equal(cli.code, 1);
    assert.equal(cli.stderr.trim().split('\n').length, 1);
    assert.match(cli.stderr, /^sprite: .*not an admin token/);
  });

  test('each org sees only its own sprites; an admin sees all with their org', async () => {
    const made = await a.cli(['create', 'acme-app'], { env: { SPRITE_TOKEN: acme } });
    assert.equal(made.code, 0, made.stderr);
    const other = await call(a, globex, 'POST', '/v1/sprites', { name: 'globex-app' });
    assert.equal(other.status, 201, JSON.stringify(other.body));
    assert.equal(other.body.organization, 'globex');
    // Names are mesh-wide (they are URL labels), so create is the one place another org's name shows.
    assert.equal((await call(a, acme, 'POST', '/v1/sprites', { name: 'globex-app' })).body.error, 'ERR_NAME_TAKEN');

    const mine = await call(a, acme, 'GET', '/v1/sprites');
    assert.deepEqual(mine.body.sprites.map((s: { name: string; organization: string }) => [s.name, s.organization]), [['acme-app', 'acme']]);
    assert.deepEqual([mine.body.name, mine.body.running], ['acme', 1], 'the org and its counts');
    const all = await a.api('GET', '/v1/sprites');
    assert.deepEqual(all.body.sprites.map((s: { name: string; organization: string }) => [s.name, s.organization]).sort(), [['acme-app', 'acme'], ['globex-app', 'globex']]);
    const table = await a.cli(['list']);
    assert.match(table.stdout, /acme-app\s+running\s+\S+\s+acme\s/);
    assert.match(table.stdout, /globex-app\s+running\s+\S+\s+globex\s/);
    // B filters the replicated rows the same way.
    await eventually(async () => (await call(b, globex, 'GET', '/v1/sprites')).body.sprites?.length === 1, 20_000, 'the sprites on B');
    assert.deepEqual((await call(b, globex, 'GET', '/v1/sprites')).body.sprites.map((s: { name: string }) => s.name), ['globex-app']);
    assert.equal((await a.cli(['org', 'list'])).stdout.match(/acme\s+(\d+)/)?.[1], '1');
  });

  test("another org's sprite answers exactly like a missing one, for every kind of operation", async () => {
    const ghost = await call(a, acme, 'GET', '/v1/sprites/ghost-app');
    const hidden = await call(a, acme, 'GET', '/v1/sprites/globex-app');
    assert.equal(hidden.status, 404);
    assert.deepEqual(hidden.body, { error: 'ERR_SPRITE_NOT_FOUND', message: ghost.body.message.replace('ghost-app', 'globex-app') });
    for (const [method, path, body] of [
      ['DELETE', '/v1/sprites/globex-app'], ['POST', '/v1/sprites/globex-app/stop'], ['PUT', '/v1/sprites/globex-app', { labels: ['x'] }], ['POST', '/v1/sprites/globex-app/restart'], ['GET', '/v1/sprites/globex-app/check'], ['POST', '/v1/sprites/globex-app/upgrade'],
      ['POST', '/v1/sprites/globex-app/checkpoint', {}], ['GET', '/v1/sprites/globex-app/checkpoints'], ['GET', '/v1/sprites/globex-app/policy/resources'], ['GET', '/v1/sprites/globex-app/services'], ['GET', '/v1/sprites/globex-app/logs'],
    ] as const) {
      const answer = await call(a, acme, method, path, body);
      assert.equal(answer.status, 404, `${method} ${path}`);
      assert.equal(answer.body.error, 'ERR_SPRITE_NOT_FOUND', `${method} ${path}`);
    }
    // On the peer that does not own it too.
    assert.equal((await call(b, acme, 'GET', '/v1/sprites/globex-app')).body.error, 'ERR_SPRITE_NOT_FOUND');
    const exec = await a.cli(['exec', 'globex-app', '--', 'true'], { env: { SPRITE_TOKEN: acme } });
    assert.equal(exec.code, 1);
    assert.match(exec.stderr, /^sprite: no sprite named globex-app\n$/);
    const checkpoint = await a.cli(['checkpoint', 'create', 'globex-app'], { env: { SPRITE_TOKEN: acme } });
    assert.equal(checkpoint.code, 1);
    assert.match(checkpoint.stderr, /no sprite named globex-app/);

    // The sprite is untouched, and its own org (and an admin) still drive it.
    const own = await a.cli(['exec', 'globex-app', '--', 'echo', 'still here'], { env: { SPRITE_TOKEN: globex } });
    assert.equal(own.code, 0, own.stderr);
    assert.equal(own.stdout, 'still here\n');
    const saved = await a.cli(['checkpoint', 'create', 'globex-app', '-m', 'mine'], { env: { SPRITE_TOKEN: globex } });
    assert.equal(saved.code, 0, saved.stderr);
    const id = saved.stdout.trim();
    assert.equal((await call(a, acme, 'GET', `/v1/sprites/globex-app/checkpoints/${id}`)).body.error, 'ERR_SPRITE_NOT_FOUND');
    assert.equal((await call(a, acme, 'POST', `/v1/sprites/globex-app/checkpoints/${id}/restore`)).body.error, 'ERR_SPRITE_NOT_FOUND');
    assert.equal((await a.api('GET', '/v1/sprites/globex-app')).body.organization, 'globex');
    assert.equal((await a.cli(['exec', 'acme-app', '--', 'true'], { env: { SPRITE_TOKEN: acme } })).code, 0);
  });

  test("the sprite URL opens only with a token of the sprite's org or an admin token, on every peer", async () => {
    const write = await a.cli(['exec', 'acme-app', '--', 'sh', '-c', 'mkdir -p /www && echo acme page > /www/index.html']);
    assert.equal(write.code, 0, write.stderr);
    const service = await a.cli(['services', 'create', 'acme-app', 'web', '--http-port', '8080', '--', 'httpd', '-f', '-p', '8080', '-h', '/www'], { env: { SPRITE_TOKEN: acme } });
    assert.equal(service.code, 0, service.stderr);
    urlOnA = (await a.cli(['url', 'acme-app'], { env: { SPRITE_TOKEN: acme } })).stdout.trim();
    urlOnB = await eventually(async () => {
      const result = await b.cli(['url', 'acme-app'], { env: { SPRITE_TOKEN: acme } });
      return result.code === 0 ? result.stdout.trim() : undefined;
    }, 20_000, 'the sprite URL on B');
    ca = join(a.dataDir, 'mesh-ca.pem');
    await writeFile(ca, (await a.cli(['peer', 'ca'])).stdout);
    await eventually(async () => (await curl(urlOnA, ca, [bearer(acme)])).status === 200, 20_000, 'the page on A');
    for (const url of [urlOnA, urlOnB]) {
      const page = await curl(url, ca, [bearer(acme)]);
      assert.equal(page.status, 200, url);
      assert.equal(page.body, 'acme page\n');
      assert.equal((await curl(url, ca, [bearer(a.token)])).status, 200, 'an admin token opens it');
      const wrong = await curl(url, ca, [bearer(globex)]);
      assert.equal(wrong.status, 401, url);
      assert.equal(wrong.error, 'ERR_PROXY_UNAUTHORIZED');
      assert.equal((await curl(url, ca)).status, 401);
      // Another org's token cannot sign in here; the stored hash of acme's token (what mesh.db holds) is no cookie.
      assert.equal(await login(url, ca, globex), undefined);
      assert.equal((await curl(url, ca, [`cookie: __Host-sprite_auth=${createHash('sha256').update(acme).digest('hex')}`])).status, 401);
      // A session signed on A opens the URL on either peer (the key comes from the swarm key).
      const session = await login(urlOnA, ca, acme);
      assert.match(session ?? '', /^__Host-sprite_auth=v1\./);
      assert.equal((await curl(url, ca, [`cookie: ${session}`])).status, 200);
    }
  });

  test('a token revoked on one peer is refused on the other soon after, by the API and the proxy', async () => {
    // Warm both proxies' token caches with the token first: revocation must empty them.
    assert.equal((await curl(urlOnB, ca, [bearer(acme)])).status, 200);
    assert.equal((await call(b, acme, 'GET', '/v1/sprites')).status, 200);
    const revoked = await a.cli(['token', 'revoke', 'acme-dev']);
    assert.equal(revoked.code, 0, revoked.stderr);
    const onA = await call(a, acme, 'GET', '/v1/sprites');
    assert.equal(onA.status, 401);
    assert.equal(onA.body.error, 'ERR_UNAUTHORIZED');
    assert.equal((await curl(urlOnA, ca, [bearer(acme)])).status, 401);
    await eventually(async () => (await call(b, acme, 'GET', '/v1/sprites')).status === 401, 20_000, 'the API on B to refuse the revoked token');
    await eventually(async () => (await curl(urlOnB, ca, [bearer(acme)])).status === 401, 20_000, 'the proxy on B to refuse the revoked token');
    // Other tokens are untouched; the listing shows the revocation; revoking again is fine.
    assert.equal((await call(b, globex, 'GET', '/v1/sprites')).status, 200);
    assert.match((await b.cli(['token', 'list'])).stdout, /acme-dev\s+acme\s+no\s+\S+\s+revoked/);
    assert.equal((await b.cli(['token', 'revoke', 'acme-dev'])).code, 0);
    const missing = await a.cli(['token', 'revoke', 'nobody']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^sprite: no token named nobody\n$/);
    // A peer's own token is revocable like any other (peers authenticate each other by their links).
    const bId = (await (await fetch(`${b.url}/v1/health`)).json()).peer;
    assert.equal((await a.api('DELETE', `/v1/tokens/peer-${bId}`)).status, 204);
    await eventually(async () => (await call(b, b.token, 'GET', '/v1/sprites')).status === 401, 20_000, 'B to refuse its revoked own token');
    // The org's sprite is still there for an admin, and its org can get a new token.
    const fresh = await a.api('POST', '/v1/tokens', { name: 'acme-ci', org: 'acme' });
    assert.equal(fresh.status, 201);
    assert.equal((await call(a, fresh.body.token, 'DELETE', '/v1/sprites/acme-app')).status, 204);
    assert.deepEqual((await a.api('GET', '/v1/sprites')).body.sprites.map((s: { name: string }) => s.name), ['globex-app']);
  });
});
