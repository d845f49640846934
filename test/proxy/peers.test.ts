import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { SPRITE_APP_COMMAND, spriteAppSource } from './sprite-app.ts';

const run = promisify(execFile);

/** curl, as a person would run it; resolves with status, body and the error header. */
async function curl(url: string, options: { ca: string; token?: string }): Promise<{ status: number; body: string; error: string }> {
  const args = ['-sS', '--max-time', '20', '--cacert', options.ca, '-o', '-', '-w', '\n%{http_code} %header{x-sprite-error}', url];
  if (options.token) args.push('-H', `authorization: Bearer ${options.token}`);
  const { stdout } = await run('curl', args);
  const cut = stdout.lastIndexOf('\n');
  const [status, error] = stdout.slice(cut + 1).split(' ');
  return { status: Number(status), body: stdout.slice(0, cut), error: error ?? '' };
}

describe('sprite URLs on two real peers', () => {
  let owner: PeerProcess;
  let edge: PeerProcess;
  let ownerUrl = '';
  let edgeUrl = '';
  let ca = '';

  before(async () => {
    owner = await startPeer({ poolDepth: 1 });
    edge = await startPeer({ poolDepth: 0, join: owner });
    assert.equal((await owner.api('POST', '/v1/sprites', { name: 'web' })).status, 201);
    const write = await owner.cli(['exec', 'web', '--', 'sh', '-c', 'mkdir -p /srv && cat > /srv/app.mjs'], { input: spriteAppSource('web') });
    assert.equal(write.code, 0, write.stderr);
    const service = await owner.cli(['services', 'create', 'web', 'app', '--http-port', '8080', '--', ...SPRITE_APP_COMMAND]);
    assert.equal(service.code, 0, service.stderr);
    ownerUrl = (await owner.cli(['url', 'web'])).stdout.trim();
    // The edge peer must have the sprite's row and the owner's proxy address before it can forward.
    edgeUrl = await eventually(async () => {
      const result = await edge.cli(['url', 'web']);
      return result.code === 0 ? result.stdout.trim() : undefined;
    }, 20_000, 'the sprite on the edge peer');
    ca = join(edge.dataDir, 'mesh-ca.pem');
    await writeFile(ca, (await edge.cli(['peer', 'ca'])).stdout);
    await eventually(async () => (await curl(ownerUrl, { ca, token: owner.token })).status === 200, 20_000, 'the app to answer');
  });
  after(async () => {
    await edge?.stop();
    await owner?.stop();
    if (edge) await removeDataDir(edge.dataDir);
    if (owner) await removeDataDir(owner.dataDir);
  });

  test('`sprite url` prints each peer\'s HTTPS URL and `sprite peer ca` the same CA on every peer', async () => {
    assert.match(ownerUrl, /^https:\/\/web\.sprites\.localhost:\d+\/$/);
    assert.match(edgeUrl, /^https:\/\/web\.sprites\.localhost:\d+\/$/);
    assert.notEqual(ownerUrl, edgeUrl);
    const caOwner = await owner.cli(['peer', 'ca']);
    const caEdge = await edge.cli(['peer', 'ca']);
    assert.match(caOwner.stdout, /^-----BEGIN CERTIFICATE-----/);
    assert.equal(caOwner.stdout, caEdge.stdout);
    const view = JSON.parse((await edge.cli(['url', 'web', '--json'])).stdout);
    assert.equal(view.url_settings.auth, 'sprite');
    assert.match(view.http_url, /^http:\/\/web\.sprites\.localhost:\d+\/$/);
  });

  test('a service on :8080 answers through its owner\'s proxy and through another peer\'s (curl, mesh CA)', async () => {
    const direct = await curl(ownerUrl, { ca, token: owner.token });
    assert.equal(direct.body, 'hello from web\n');
    const twoHops = await curl(edgeUrl, { ca, token: owner.token });
    assert.equal(twoHops.status, 200);
    assert.equal(twoHops.body, 'hello from web\n');
    const headers = JSON.parse((await curl(`${edgeUrl}headers`, { ca, token: edge.token })).body) as Record<string, string>;
    assert.equal(headers['x-forwarded-proto'], 'https');
    assert.equal(headers.authorization, undefined);
  });

  test('unknown sprites are 404 for an admin, 401 like a private one without a token; URL auth can be switched to public from any peer', async () => {
    const missing = await curl(edgeUrl.replace('web.', 'nope.'), { ca, token: owner.token });
    assert.equal(missing.status, 404);
    assert.equal(missing.error, 'ERR_PROXY_SPRITE_NOT_FOUND');
    const refused = await curl(edgeUrl, { ca });
    assert.equal(refused.status, 401);
    assert.equal(refused.error, 'ERR_PROXY_UNAUTHORIZED');
    // Only an admin learns that a name is unknown: without a token it looks like a private sprite.
    const anonymous = await curl(edgeUrl.replace('web.', 'nope.'), { ca });
    assert.deepEqual([anonymous.status, anonymous.error, anonymous.body.replace('nope', 'web')], [refused.status, refused.error, refused.body]);
    // The edge peer does not own the sprite: it hands the change to the owner, which writes the row.
    const update = await edge.cli(['url', 'update', 'web', '--auth', 'public', '--json']);
    assert.equal(update.code, 0, update.stderr);
    assert.equal(JSON.parse(update.stdout).url_settings.auth, 'public');
    await eventually(async () => (await curl(edgeUrl, { ca })).status === 200, 10_000, 'the public URL on the edge peer');
    // A public sprite's app never sees the caller's API token (here a peer's admin token).
    const seen = JSON.parse((await curl(`${edgeUrl}headers`, { ca, token: owner.token })).body) as Record<string, string>;
    assert.equal(seen.authorization, undefined);
    assert.equal((await edge.cli(['url', 'update', 'web', '--auth', 'sprite'])).code, 0);
    await eventually(async () => (await curl(edgeUrl, { ca })).status === 401, 10_000, 'the URL to need a token again');
    const bad = await edge.cli(['url', 'update', 'web', '--auth', 'nobody']);
    assert.equal(bad.code, 2);
  });

  test('a WebSocket echoes and Server-Sent Events stream through two hops', async () => {
    const caPem = (await edge.cli(['peer', 'ca'])).stdout;
    const port = Number(new URL(edgeUrl).port);
    const ws = new WebSocket(`wss://127.0.0.1:${port}/`, { ca: caPem, servername: 'web.sprites.localhost', headers: { host: 'web.sprites.localhost', authorization: `Bearer ${owner.token}` } } as WebSocket.ClientOptions);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const replies: string[] = [];
    ws.on('message', (data) => replies.push(data.toString()));
    ws.send('ping one');
    ws.send('ping two');
    await eventually(() => replies.length === 2, 10_000, 'two echoes');
    assert.deepEqual(replies, ['ping one', 'ping two']);
    ws.close();
    const events = await new Promise<string>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port, path: '/sse', servername: 'web.sprites.localhost', ca: caPem, headers: { host: 'web.sprites.localhost', authorization: `Bearer ${owner.token}` } }, (res) => {
        assert.equal(res.headers['content-type'], 'text/event-stream');
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
    assert.equal(events, 'data: tick 0\n\ndata: tick 1\n\ndata: tick 2\n\n');
  });

  test('a stopped sprite is woken by a request through another peer', async () => {
    const stopped = await owner.cli(['stop', 'web']);
    assert.equal(stopped.code, 0, stopped.stderr);
    await eventually(async () => (await edge.api('GET', '/v1/sprites/web')).body.status === 'stopped', 10_000, 'the edge to see it stopped');
    const woken = await curl(edgeUrl, { ca, token: owner.token });
    assert.equal(woken.status, 200, woken.body);
    assert.equal(woken.body, 'hello from web\n');
    assert.equal((await owner.api('GET', '/v1/sprites/web')).body.status, 'running');
  });
});
