import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer } from 'node:net';
import { createOn, eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

describe('the sprite of a command line: -s, sprite use and .sprite; aliases; sprite api', () => {
  let peer: PeerProcess;
  let dir: string;
  before(async () => {
    peer = await startPeer({ poolDepth: 2 });
    await createOn(peer, 'ctx-a');
    await createOn(peer, 'ctx-b');
    dir = await mkdtemp(join(tmpdir(), 'sprite-cwd-'));
  });
  after(async () => {
    await peer?.stop();
    if (peer) await removeDataDir(peer.dataDir);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('-s names the sprite; x is exec and takes the whole line as the command', async () => {
    const ran = await peer.cli(['x', '-s', 'ctx-a', 'hostname'], { cwd: dir });
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout.trim(), 'ctx-a');
    const positional = await peer.cli(['exec', 'ctx-b', '--', 'hostname'], { cwd: dir });
    assert.equal(positional.stdout.trim(), 'ctx-b');
    const bad = await peer.cli(['x', '-s', 'Not_A_Name', 'true'], { cwd: dir });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^sprite: -s: sprite name must be/);
  });

  test('sprite use writes .sprite; later commands in that tree use it unless they name a sprite', async () => {
    const missing = await peer.cli(['use', 'no-such-sprite'], { cwd: dir });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^sprite: .*no-such-sprite/);
    assert.equal((await peer.cli(['use'], { cwd: dir })).code, 1, 'no context yet');

    const used = await peer.cli(['use', 'ctx-b'], { cwd: dir });
    assert.equal(used.code, 0, used.stderr);
    assert.deepEqual(JSON.parse(await readFile(join(dir, '.sprite'), 'utf8')), { sprite: 'ctx-b' });
    const sub = join(dir, 'deep', 'er');
    await mkdir(sub, { recursive: true });
    assert.equal((await peer.cli(['use'], { cwd: sub })).stdout, `ctx-b\t${join(dir, '.sprite')}\n`);
    assert.equal((await peer.cli(['exec', 'hostname'], { cwd: sub })).stdout.trim(), 'ctx-b');
    assert.equal((await peer.cli(['x', '-s', 'ctx-a', 'hostname'], { cwd: sub })).stdout.trim(), 'ctx-a', '-s wins over .sprite');
    const stopped = await peer.cli(['stop', 'ctx-a', '--json'], { cwd: sub });
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal((await peer.api('GET', '/v1/sprites/ctx-a')).body.name, 'ctx-a');
    assert.equal((await peer.cli(['start', 'ctx-a'], { cwd: sub })).code, 0);

    await writeFile(join(dir, '.sprite'), 'NOT OK\n');
    const broken = await peer.cli(['exec', 'true'], { cwd: sub });
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /\.sprite does not name a sprite/);
    assert.equal((await peer.cli(['use', '--unset'], { cwd: dir })).code, 0);
    assert.equal((await peer.cli(['use'], { cwd: sub })).code, 1, 'unset removed the file');
  });

  test('exec forwards a port its command opens to the same local port while it runs', async () => {
    const port = await freePort();
    const line = `mkdir -p /tmp/www && echo forwarded > /tmp/www/index.html && exec timeout 8 httpd -f -p ${port} -h /tmp/www`;
    const running = peer.cli(['x', '-s', 'ctx-a', 'sh', '-c', line], { cwd: dir });
    const body = await eventually(async () => {
      const answer = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), () => undefined);
      return answer?.trim() === 'forwarded' ? answer : undefined;
    }, 20_000, 'the forwarded port');
    assert.equal(body.trim(), 'forwarded');
    const done = await running;
    assert.match(done.stderr, new RegExp(`forwarding 127\\.0\\.0\\.1:${port} to port ${port} in ctx-a`));
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`), 'the local listener closes with the exec');

    const quiet = await peer.cli(['x', '-s', 'ctx-a', '--no-port-forward', 'sh', '-c', `timeout 3 httpd -f -p ${port} -h /tmp/www; true`], { cwd: dir });
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /forwarding/);
  });

  test('sprite info shows the sprite; sprite restart gives it a new sandbox on the same disk', async () => {
    const info = await peer.cli(['info', '-s', 'ctx-a'], { cwd: dir });
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /^name\s+ctx-a$/m);
    assert.match(info.stdout, /^status\s+running$/m);
    assert.match(info.stdout, /^url\s+https?:\/\/ctx-a\./m);
    assert.equal(JSON.parse((await peer.cli(['info', 'ctx-a', '--json'], { cwd: dir })).stdout).name, 'ctx-a');
    await peer.cli(['x', '-s', 'ctx-a', 'sh', '-c', 'echo kept > /kept; echo gone > /dev/shm/gone'], { cwd: dir });
    const restarted = await peer.cli(['restart', '-s', 'ctx-a'], { cwd: dir });
    assert.equal(restarted.code, 0, restarted.stderr);
    const after = await peer.cli(['x', '-s', 'ctx-a', 'sh', '-c', 'cat /kept; ls /dev/shm'], { cwd: dir });
    assert.equal(after.stdout, 'kept\n', 'the disk stays, the memory-backed /dev/shm is new');
  });

  test('sprite api sends one request, under the sprite with -s, and fails in one line', async () => {
    const got = await peer.cli(['api', '-s', 'ctx-a', '/'], { cwd: dir });
    assert.equal(got.code, 0, got.stderr);
    assert.equal(JSON.parse(got.stdout).name, 'ctx-a');
    const list = await peer.cli(['api', '/sprites'], { cwd: dir });
    assert.deepEqual((JSON.parse(list.stdout) as { sprites: { name: string }[] }).sprites.map((s) => s.name).sort(), ['ctx-a', 'ctx-b']);
    const missing = await peer.cli(['api', '/v1/sprites/nope'], { cwd: dir });
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.split('\n').length, 2, 'one line');
    assert.match(missing.stderr, /^sprite: .*nope/);
    const badMethod = await peer.cli(['api', '-X', 'BREW', '/sprites'], { cwd: dir });
    assert.equal(badMethod.code, 2);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });
}
