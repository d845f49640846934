import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { APIError, SpritesClient } from '@fly/sprites';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

/** An answer of the API: status, Retry-After header and JSON body. */
interface Answer {
  status: number;
  retryAfter: string | null;
  body: any;
}

/** A JSON request with a given token. */
async function call(peer: PeerProcess, token: string, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${peer.url}${path}`, {
    method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // NDJSON (a checkpoint's stream): kept as text.
  }
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: parsed };
}

/** A GET of a sprite's URL through a peer's HTTP proxy (`http_url` as that peer shows it): status and the proxy's headers. */
function proxyGet(url: string, token: string): Promise<{ status: number; error: string | undefined; retryAfter: string | undefined }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host: `${hostname}:${port}`, authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, error: res.headers['x-sprite-error'] as string | undefined, retryAfter: res.headers['retry-after'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Asserts the answer is the quota's 429 in the project's error shape with Sprites' rate-limit fields. */
function assertQuota(answer: Answer, quota: string, used: number, limit: number): void {
  assert.equal(answer.status, 429, JSON.stringify(answer.body));
  assert.equal(answer.retryAfter, '30');
  assert.deepEqual(
    { error: answer.body.error, quota: answer.body.quota, current_count: answer.body.current_count, limit: answer.body.limit, retry_after_seconds: answer.body.retry_after_seconds },
    { error: 'ERR_QUOTA_EXCEEDED', quota, current_count: used, limit, retry_after_seconds: 30 },
  );
  assert.match(answer.body.message, /^org acme holds /);
}

describe('per-org quotas on two peers', () => {
  let a: PeerProcess;
  let b: PeerProcess;
  let acme = '';
  let globex = '';
  const both = (): PeerProcess[] => [a, b];

  /** Sprite names of an org as `peer` lists them. */
  const names = async (peer: PeerProcess, token: string): Promise<string[]> => (await call(peer, token, 'GET', '/v1/sprites')).body.sprites.map((s: { name: string }) => s.name).sort();
  /** Waits until both peers' replicas show acme with these sprite names. */
  const settled = async (expected: string[]): Promise<void> => {
    for (const peer of both()) await eventually(async () => JSON.stringify(await names(peer, acme)) === JSON.stringify(expected), 20_000, `acme's sprites on ${peer.url}`);
  };
  /** Waits until both peers see an acme quota with this use. */
  const used = async (kind: string, check: (used: number) => boolean): Promise<number> => {
    let seen = 0;
    for (const peer of both()) {
      seen = await eventually(async () => {
        const value = (await peer.api('GET', '/v1/orgs/acme')).body.quotas[kind].used as number;
        return check(value) ? value : undefined;
      }, 20_000, `acme's ${kind} on ${peer.url}`);
    }
    return seen;
  };

  before(async () => {
    a = await startPeer({ poolDepth: 1 });
    b = await startPeer({ poolDepth: 1, join: a });
    for (const org of ['acme', 'globex']) assert.equal((await a.api('POST', '/v1/orgs', { name: org })).status, 201);
    acme = (await a.api('POST', '/v1/tokens', { name: 'acme-dev', org: 'acme' })).body.token;
    globex = (await a.api('POST', '/v1/tokens', { name: 'globex-dev', org: 'globex' })).body.token;
    await eventually(async () => (await call(b, acme, 'GET', '/v1/sprites')).status === 200 && (await call(b, globex, 'GET', '/v1/sprites')).status === 200, 20_000, 'the tokens on B');
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
    if (b) await removeDataDir(b.dataDir);
    if (a) await removeDataDir(a.dataDir);
  });

  test('only an admin sets or reads quotas; bodies are checked', async () => {
    for (const peer of both()) {
      const own = await call(peer, acme, 'PUT', '/v1/orgs/acme/quotas', { sprites: 1000 });
      assert.deepEqual([own.status, own.body.error], [403, 'ERR_FORBIDDEN']);
      assert.equal((await call(peer, acme, 'GET', '/v1/orgs/acme')).status, 403);
    }
    const cli = await a.cli(['org', 'quota', 'acme', '--sprites', '1000'], { env: { SPRITE_TOKEN: acme } });
    assert.equal(cli.code, 1);
    assert.equal(cli.stderr, "sprite: token acme-dev of org acme is not an admin token; PUT /v1/orgs/acme/quotas takes one\n");
    const typo = await a.cli(['org', 'quota', 'acme', '--running', 'lots']);
    assert.deepEqual([typo.code, typo.stderr], [2, "sprite: --running must be a whole number, got 'lots' (or default)\n"]);
    for (const body of [{ sprites: -1 }, { sprites: 1.5 }, { sprites: '3' }, { disks: 1 }, [1]]) {
      const bad = await a.api('PUT', '/v1/orgs/acme/quotas', body);
      assert.deepEqual([bad.status, bad.body.error], [400, 'ERR_BAD_REQUEST'], JSON.stringify(body));
    }
    const nobody = await a.api('PUT', '/v1/orgs/nobody/quotas', { sprites: 1 });
    assert.equal(nobody.body.error, 'ERR_ORG_NOT_FOUND', nobody.body.message);
    assert.equal((await a.api('GET', '/v1/orgs/nobody')).status, 404);
    // Nothing changed: every quota still the peer's default (none).
    const shown = (await a.api('GET', '/v1/orgs/acme')).body;
    assert.deepEqual(shown.quotas.sprites, { limit: null, used: 0, source: 'default' });

    const set = await a.cli(['org', 'quota', 'acme', '--sprites', '2', '--running', '1', '--checkpoints', '1']);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /^acme .*\nQUOTA\s+USED\s+LIMIT\s+FROM\nsprites\s+0\s+2\s+org\nrunning\s+0\s+1\s+org\ncheckpoints\s+0\s+1\s+org\nstorage_bytes\s+0\s+none\s+default\n$/);
    // The quotas are replicated: B enforces them too.
    await eventually(async () => (await b.api('GET', '/v1/orgs/acme')).body.quotas.running.limit === 1, 20_000, 'the quotas on B');
  });

  test('running and sprite quotas refuse creates and starts through either peer; nothing is created past them', async () => {
    assert.equal((await call(a, acme, 'POST', '/v1/sprites', { name: 'q1' })).status, 201);
    await settled(['q1']);
    // Through the peer that owns q1 and through the other one: the same 429, and no sprite.
    for (const peer of both()) assertQuota(await call(peer, acme, 'POST', '/v1/sprites', { name: 'q2' }), 'running', 1, 1);
    // The SDK reads the 429 as a rate-limit error with its retry time.
    const sdk = await new SpritesClient(acme, { baseURL: b.url }).createSprite('q2').then(() => undefined, (error: unknown) => error);
    assert.ok(sdk instanceof APIError, String(sdk));
    assert.deepEqual([sdk.statusCode, sdk.errorCode, sdk.isRateLimitError(), sdk.retryAfterSeconds, sdk.retryAfterHeader, sdk.currentCount, sdk.limit], [429, 'ERR_QUOTA_EXCEEDED', true, 30, 30, 1, 1]);
    // The CLI: one line on stderr, exit 1.
    const cli = await b.cli(['create', 'q2'], { env: { SPRITE_TOKEN: acme } });
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /^sprite: org acme holds 1 running sprites of its quota of 1: stop a sprite .*\(retry after 30 s\)\n$/);
    await settled(['q1']);
    for (const peer of both()) assert.equal((await call(peer, acme, 'GET', '/v1/sprites/q2')).status, 404);

    // Another org is not held by acme's quotas.
    assert.equal((await call(b, globex, 'POST', '/v1/sprites', { name: 'g1' })).status, 201);

    // A stopped sprite does not run: room for one more; starting q1 again is over the running quota.
    assert.equal((await call(b, acme, 'POST', '/v1/sprites/q1/stop')).status, 200);
    await used('running', (n) => n === 0);
    assert.equal((await call(b, acme, 'POST', '/v1/sprites', { name: 'q2' })).status, 201);
    await settled(['q1', 'q2']);
    await used('running', (n) => n === 1);
    for (const peer of both()) assertQuota(await call(peer, acme, 'POST', '/v1/sprites/q1/start'), 'running', 1, 1);
    // Its URL starts a stopped sprite, but not past the quota: a 429 page, through either peer's proxy.
    for (const peer of both()) {
      const page = await proxyGet((await call(peer, acme, 'GET', '/v1/sprites/q1')).body.http_url, acme);
      assert.deepEqual(page, { status: 429, error: 'ERR_PROXY_QUOTA', retryAfter: '30' });
    }
    assert.equal((await call(a, acme, 'GET', '/v1/sprites/q1')).body.status, 'stopped');

    // Two sprites of two: the sprite quota holds even with no sprite running.
    assert.equal((await call(a, acme, 'POST', '/v1/sprites/q2/stop')).status, 200);
    await used('running', (n) => n === 0);
    for (const peer of both()) assertQuota(await call(peer, acme, 'POST', '/v1/sprites', { name: 'q3' }), 'sprites', 2, 2);
    await settled(['q1', 'q2']);

    // The operator raises the running quota: the start goes through.
    const raised = await a.api('PUT', '/v1/orgs/acme/quotas', { running: 2 });
    assert.deepEqual([raised.status, raised.body.quotas.running], [200, { limit: 2, used: 0, source: 'org' }]);
    await eventually(async () => (await b.api('GET', '/v1/orgs/acme')).body.quotas.running.limit === 2, 20_000, 'the new quota on B');
    const started = await call(b, acme, 'POST', '/v1/sprites/q1/start');
    assert.deepEqual([started.status, started.body.status], [200, 'running']);
  });

  test('checkpoint and storage quotas refuse checkpoints and creates; clearing an override lifts them', async () => {
    // Write into q1's disk, so the checkpoint holds bytes of its own beyond the base image (the checkpoint's
    // freeze flushes them; no `sync`, which waits on every filesystem of the host).
    const wrote = await a.cli(['exec', 'q1', '--', 'sh', '-c', 'dd if=/dev/urandom of=/blob bs=1M count=2 2>/dev/null && echo ok']);
    assert.equal(wrote.stdout, 'ok\n', wrote.stderr);
    const first = await call(b, acme, 'POST', '/v1/sprites/q1/checkpoint', {});
    assert.equal(first.status, 200);
    assert.match(first.body, /Checkpoint v0 created/);
    await used('checkpoints', (n) => n === 1);
    for (const peer of both()) assertQuota(await call(peer, acme, 'POST', '/v1/sprites/q1/checkpoint', {}), 'checkpoints', 1, 1);
    assert.deepEqual((await call(a, acme, 'GET', '/v1/sprites/q1/checkpoints')).body.map((c: { id: string }) => c.id), ['v0']);

    // What the org holds in the store: at least the 2 MiB written (whole units), none of the base image.
    const bytes = await used('storage_bytes', (n) => n >= 2 * 1024 ** 2);
    assert.ok(bytes < 64 * 1024 ** 2, `acme holds ${bytes} bytes`);
    // A storage quota at what the org holds: no more checkpoints, and no more sprites.
    await a.api('PUT', '/v1/orgs/acme/quotas', { checkpoints: 10, sprites: 10, storage_bytes: bytes });
    await eventually(async () => (await b.api('GET', '/v1/orgs/acme')).body.quotas.storage_bytes.limit === bytes, 20_000, 'the storage quota on B');
    for (const peer of both()) {
      assertQuota(await call(peer, acme, 'POST', '/v1/sprites/q1/checkpoint', {}), 'storage_bytes', bytes, bytes);
      assertQuota(await call(peer, acme, 'POST', '/v1/sprites', { name: 'q3' }), 'storage_bytes', bytes, bytes);
    }
    await settled(['q1', 'q2']);

    // Back to the peer's default (no limit): the checkpoint goes through.
    const cleared = await a.cli(['org', 'quota', 'acme', '--storage', 'default', '--json']);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.deepEqual(JSON.parse(cleared.stdout).quotas.storage_bytes, { limit: null, used: bytes, source: 'default' });
    await eventually(async () => (await b.api('GET', '/v1/orgs/acme')).body.quotas.storage_bytes.limit === null, 20_000, 'the cleared quota on B');
    const second = await call(b, acme, 'POST', '/v1/sprites/q1/checkpoint', {});
    assert.match(second.body, /Checkpoint v1 created/);
    await used('checkpoints', (n) => n === 2);
  });

  test('the org list still counts; another org keeps the defaults', async () => {
    const listed = (await a.api('GET', '/v1/orgs')).body.orgs.find((o: { name: string }) => o.name === 'acme');
    assert.deepEqual([listed.sprites, listed.tokens], [2, 1]);
    const globexView = (await b.api('GET', '/v1/orgs/globex')).body;
    assert.deepEqual(globexView.quotas.sprites, { limit: null, used: 1, source: 'default' });
  });
});
