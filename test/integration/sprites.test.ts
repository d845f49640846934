import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

describe('sprites on one peer, through the CLI and the API', () => {
  let peer: PeerProcess;
  before(async () => {
    peer = await startPeer({ poolDepth: 1 });
  });
  after(async () => {
    await peer?.stop();
    if (peer) await removeDataDir(peer.dataDir);
  });

  test('health answers without a token; everything else needs it', async () => {
    const health = await fetch(`${peer.url}/v1/health`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { ok: boolean }).ok, true);
    const denied = await fetch(`${peer.url}/v1/sprites`);
    assert.equal(denied.status, 401);
    assert.equal(((await denied.json()) as { error: string }).error, 'ERR_UNAUTHORIZED');
    const wrong = await fetch(`${peer.url}/v1/sprites`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
  });

  test('create, list and get through the CLI', async () => {
    const created = await peer.cli(['create', 'alpha']);
    assert.equal(created.code, 0, created.stderr);
    const listed = await peer.cli(['list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const sprites = JSON.parse(listed.stdout) as { sprites: { name: string; status: string }[]; running: number };
    assert.deepEqual(sprites.sprites.map((s) => [s.name, s.status]), [['alpha', 'running']]);
    assert.equal(sprites.running, 1);
    const table = await peer.cli(['list']);
    assert.match(table.stdout, /alpha\s+running/);
    const got = await peer.api('GET', '/v1/sprites/alpha');
    assert.equal(got.status, 200);
    assert.equal(got.body.name, 'alpha');
  });

  test('bad names, duplicates, unknown sprites and bad bodies get clear errors', async () => {
    const bad = await peer.api('POST', '/v1/sprites', { name: 'Not_A_Label' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, 'ERR_BAD_NAME');
    assert.match(bad.body.message, /1-63 characters of a-z, 0-9 and '-'/);
    for (const name of ['', '-lead', 'trail-', 'a'.repeat(64), 'dots.not.ok']) {
      assert.equal((await peer.api('POST', '/v1/sprites', { name })).status, 400, name);
    }
    const dup = await peer.api('POST', '/v1/sprites', { name: 'alpha' });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error, 'ERR_NAME_TAKEN');
    const missing = await peer.api('GET', '/v1/sprites/ghost');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error, 'ERR_SPRITE_NOT_FOUND');
    const extra = await peer.api('POST', '/v1/sprites', { name: 'beta', size: 'huge' });
    assert.equal(extra.status, 400);
    assert.match(extra.body.message, /size is not a known field/);
    const garbage = await fetch(`${peer.url}/v1/sprites`, { method: 'POST', headers: { authorization: `Bearer ${peer.token}` }, body: '{nope' });
    assert.equal(garbage.status, 400);
    assert.equal(((await garbage.json()) as { error: string }).error, 'ERR_BAD_REQUEST');
    const cli = await peer.cli(['create', 'Bad!']);
    assert.equal(cli.code, 1);
    assert.equal(cli.stderr.trim().split('\n').length, 1);
    assert.match(cli.stderr, /^sprite: .*1-63 characters/);
  });

  test('exec propagates stdout, stderr, stdin and the exit status', async () => {
    const result = await peer.cli(['exec', 'alpha', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    assert.equal(result.code, 7);
    assert.equal(result.stdout, 'out\n');
    assert.equal(result.stderr, 'err\n');
    const cat = await peer.cli(['exec', 'alpha', '--', 'cat'], { input: 'piped input\n' });
    assert.equal(cat.code, 0);
    assert.equal(cat.stdout, 'piped input\n');
  });

  test('large output and input arrive whole', async () => {
    const inside = await peer.cli(['exec', 'alpha', '--', 'sh', '-c', 'seq 1 2000000 | sha256sum']);
    const big = await peer.cli(['exec', 'alpha', '--', 'seq', '1', '2000000']);
    assert.equal(big.code, 0);
    const { createHash } = await import('node:crypto');
    assert.equal(`${createHash('sha256').update(big.stdout).digest('hex')}  -\n`, inside.stdout);
    const input = 'x'.repeat(5 * 1024 * 1024);
    const counted = await peer.cli(['exec', 'alpha', '--', 'wc', '-c'], { input });
    assert.equal(counted.stdout.trim(), String(input.length));
  });

  test('exec of a missing program exits 127 with the shell message', async () => {
    const result = await peer.cli(['exec', 'alpha', '--', 'no-such-program']);
    assert.equal(result.code, 127);
    assert.match(result.stderr, /no-such-program: not found/);
  });

  test('exec with a TTY gets a terminal', async () => {
    const result = await peer.cli(['exec', '-t', 'alpha', '--', 'sh', '-c', 'tty; echo "term=$TERM"']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\/dev\/pts\/\d+/);
    assert.match(result.stdout, /term=xterm/);
  });

  test('console gives a login shell on a terminal and passes its exit status', async () => {
    // script(1) provides the pseudo-terminal a person's shell would have.
    const { execFile } = await import('node:child_process');
    const sprite = new URL('../../scripts/sprite', import.meta.url).pathname;
    const result = await new Promise<{ code: number; stdout: string }>((resolve) => {
      const child = execFile('script', ['-qfec', `${sprite} console alpha`, '/dev/null'], {
        env: { ...process.env, SPRITE_API: peer.url, SPRITE_TOKEN: peer.token }, timeout: 20_000,
      }, (error, stdout) => resolve({ code: (error as { code?: number } | null)?.code ?? 0, stdout }));
      child.stdin!.end('echo "console-$((6*7))"; hostname; exit 5\r');
    });
    assert.equal(result.code, 5);
    assert.match(result.stdout, /console-42/);
    assert.match(result.stdout, /^alpha\r?$/m);
  });

  test('exec sees the environment and directory it asked for', async () => {
    const result = await peer.cli(['exec', '--env', 'GREETING=hi there', '--dir', '/tmp', 'alpha', '--', 'sh', '-c', 'echo "$GREETING"; pwd']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'hi there\n/tmp\n');
  });

  test('WebSocket routes answer refusals with the same codes and statuses as plain routes', async () => {
    const refusal = (path: string): Promise<{ status: number; code: string }> => new Promise((resolve, reject) => {
      const ws = new WebSocket(`${peer.url.replace('http', 'ws')}${path}`, { headers: { authorization: `Bearer ${peer.token}` } });
      ws.once('open', () => reject(new Error(`${path} upgraded`)));
      ws.once('error', () => undefined);
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(body) as { error: string }).error }));
      });
    });
    assert.deepEqual(await refusal('/v1/sprites/alpha/exec/no-such-session'), { status: 404, code: 'ERR_SESSION_NOT_FOUND' });
    assert.deepEqual(await refusal('/v1/sprites/nobody/exec?cmd=true'), { status: 404, code: 'ERR_SPRITE_NOT_FOUND' });
    assert.deepEqual(await refusal('/v1/sprites/alpha/exec'), { status: 400, code: 'ERR_BAD_REQUEST' });
  });

  test('pool status reports the configured depth', async () => {
    const result = await peer.cli(['pool', 'status', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const status = JSON.parse(result.stdout) as { target: number; fallback: string };
    assert.equal(status.target, 1);
    assert.equal(status.fallback, 'cold');
  });

  test('destroy removes the sprite', async () => {
    const result = await peer.cli(['destroy', 'alpha']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await peer.api('GET', '/v1/sprites/alpha')).status, 404);
    const again = await peer.cli(['destroy', 'alpha']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no sprite named alpha/);
  });

  test('the CLI reports an unreachable peer in one line', async () => {
    const result = await peer.cli(['list'], { env: { SPRITE_API: 'http://127.0.0.1:1' } });
    assert.equal(result.code, 1);
    assert.equal(result.stderr.trim().split('\n').length, 1);
    assert.match(result.stderr, /cannot reach the peer/);
  });
});
