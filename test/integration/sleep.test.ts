import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { eventually, removeDataDir, runCli, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { SPRITE_APP_COMMAND, spriteAppSource } from '../proxy/sprite-app.ts';

const CLI = new URL('../../node/cli/main.ts', import.meta.url).pathname;

/** A GET through the peer's plain-HTTP proxy listener, as `NAME.sprites.localhost`. */
function viaProxy(port: number, name: string, token: string, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers: { host: `${name}.sprites.localhost`, authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

/** A sprite serving the test app on :8080, with a file on its disk. */
async function webSprite(peer: PeerProcess, name: string): Promise<{ id: string; proxyPort: number }> {
  const created = await peer.api('POST', '/v1/sprites', { name });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const write = await peer.cli(['exec', name, '--', 'sh', '-c', 'mkdir -p /srv && cat > /srv/app.mjs && echo "kept on disk" > /srv/data && sync'], { input: spriteAppSource(name) });
  assert.equal(write.code, 0, write.stderr);
  const service = await peer.cli(['services', 'create', name, 'app', '--http-port', '8080', '--', ...SPRITE_APP_COMMAND]);
  assert.equal(service.code, 0, service.stderr);
  const proxyPort = Number(new URL(JSON.parse((await peer.cli(['url', name, '--json'])).stdout).http).port);
  await eventually(async () => (await viaProxy(proxyPort, name, peer.token).catch(() => undefined))?.status === 200 || undefined, 30_000, 'the app to answer');
  return { id: created.body.id, proxyPort };
}

/** The sprite's state as recorded (reading the record is not use: it neither wakes nor keeps awake). */
async function state(peer: PeerProcess, name: string): Promise<string> {
  return (await peer.api('GET', `/v1/sprites/${name}`)).body.state;
}

/** The v1 freezer state of the sprite's container cgroup. */
async function freezer(peer: PeerProcess, id: string): Promise<string | undefined> {
  const peerKey = createHash('sha256').update(peer.dataDir).digest('hex').slice(0, 10);
  return (await readFile(`/sys/fs/cgroup/freezer/sprites/${peerKey}/${id}/freezer.state`, 'utf8').catch(() => undefined))?.trim();
}

/** The pid of the app service (a new process after a cold wake, the same one after a warm wake). */
async function appPid(peer: PeerProcess, name: string): Promise<number> {
  const got = await peer.api('GET', `/v1/sprites/${name}/services/app`);
  assert.equal(got.status, 200, JSON.stringify(got.body));
  assert.equal(got.body.state.status, 'running');
  return got.body.state.pid;
}

describe('warm sleep: frozen when idle, thawed by use', () => {
  let peer: PeerProcess;
  let id = '';
  let proxyPort = 0;
  before(async () => {
    peer = await startPeer({ poolDepth: 1, args: ['--warm-sleep-after', '1', '--cold-sleep-after', '3600'] });
    ({ id, proxyPort } = await webSprite(peer, 'warm'));
  });
  after(async () => {
    await peer?.stop();
    if (peer) await removeDataDir(peer.dataDir);
  });

  test('an idle sprite goes to warm sleep (frozen, listed warm) and an HTTP request through the proxy thaws it', async () => {
    const pid = await appPid(peer, 'warm');
    await eventually(async () => (await state(peer, 'warm')) === 'warm', 30_000, 'warm sleep');
    assert.equal(await freezer(peer, id), 'FROZEN');
    const list = await peer.cli(['list']);
    assert.match(list.stdout, /warm\s+warm/);
    const answer = await viaProxy(proxyPort, 'warm', peer.token);
    assert.equal(answer.status, 200);
    assert.equal(answer.body, 'hello from warm\n');
    assert.equal(await freezer(peer, id), 'THAWED');
    assert.equal(await state(peer, 'warm'), 'running');
    assert.equal(await appPid(peer, 'warm'), pid, 'the same app process: its memory was kept');
  });

  test('an exec thaws a sprite in warm sleep', async () => {
    await eventually(async () => (await state(peer, 'warm')) === 'warm', 30_000, 'warm sleep');
    const exec = await peer.cli(['exec', 'warm', '--', 'cat', '/srv/data']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout, 'kept on disk\n');
    assert.equal(await state(peer, 'warm'), 'running');
  });

  test('a long exec session keeps the sprite awake; it sleeps once the session ends', async () => {
    const child = spawn(process.execPath, [CLI, 'exec', 'warm', '--', 'sh', '-c', 'sleep 4; echo done'], {
      env: { ...process.env, SPRITE_API: peer.url, SPRITE_TOKEN: peer.token }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    let seen = 0;
    // Four times the idle time with the session open: it must stay running throughout.
    while (child.exitCode === null) {
      const now = await state(peer, 'warm');
      if (child.exitCode === null) {
        assert.equal(now, 'running');
        seen += 1;
      }
      await sleep(200);
    }
    assert.equal(await exited, 0);
    assert.equal(out, 'done\n');
    assert.ok(seen > 0);
    await eventually(async () => (await state(peer, 'warm')) === 'warm', 30_000, 'warm sleep after the session');
  });

  test('an open WebSocket through the proxy keeps the sprite awake', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${proxyPort}/`, { headers: { host: 'warm.sprites.localhost', authorization: `Bearer ${peer.token}` } });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    for (let i = 0; i < 15; i++) {
      await sleep(200);
      assert.equal(await state(peer, 'warm'), 'running');
    }
    const echo = new Promise<string>((resolve) => ws.once('message', (data) => resolve(data.toString())));
    ws.send('still here');
    assert.equal(await echo, 'still here');
    ws.close();
    await eventually(async () => (await state(peer, 'warm')) === 'warm', 30_000, 'warm sleep after the WebSocket closed');
  });

  test('a user\'s stop is not undone by an API call; `sprite start` brings the sprite back', async () => {
    assert.equal((await peer.cli(['stop', 'warm'])).code, 0);
    assert.equal(await state(peer, 'warm'), 'stopped');
    const exec = await peer.api('GET', '/v1/sprites/warm/services');
    assert.equal(exec.status, 409);
    assert.equal(exec.body.error, 'ERR_SPRITE_NOT_RUNNING');
    assert.equal((await peer.cli(['start', 'warm'])).code, 0);
    assert.equal(await state(peer, 'warm'), 'running');
  });
});

describe('cold sleep: stopped when idle longer, started again by use', () => {
  let peer: PeerProcess;
  let id = '';
  let proxyPort = 0;
  before(async () => {
    peer = await startPeer({ poolDepth: 1, args: ['--warm-sleep-after', '1', '--cold-sleep-after', '2'] });
    ({ id, proxyPort } = await webSprite(peer, 'cold'));
  });
  after(async () => {
    await peer?.stop();
    if (peer) await removeDataDir(peer.dataDir);
  });

  /** Waits for cold sleep and checks what it means: no container, the disk unmounted. */
  async function untilCold(): Promise<void> {
    await eventually(async () => (await state(peer, 'cold')) === 'cold', 60_000, 'cold sleep');
    assert.equal(await freezer(peer, id), undefined, 'the container cgroup is gone');
    const mounts = await readFile('/proc/self/mounts', 'utf8');
    assert.ok(!mounts.includes(join(peer.dataDir, 'sprites', id, 'rootfs')), 'the disk is unmounted');
    assert.match((await peer.cli(['list'])).stdout, /cold\s+cold/);
  }

  test('an HTTP request through the proxy starts a sprite in cold sleep, with its service restarted', async () => {
    const pid = await appPid(peer, 'cold');
    await untilCold();
    const answer = await viaProxy(proxyPort, 'cold', peer.token);
    assert.equal(answer.status, 200, answer.body);
    assert.equal(answer.body, 'hello from cold\n');
    assert.equal(await state(peer, 'cold'), 'running');
    assert.notEqual(await appPid(peer, 'cold'), pid, 'a new app process');
  });

  test('an exec starts a sprite in cold sleep; its disk is intact and its service runs again', async () => {
    await untilCold();
    const exec = await peer.cli(['exec', 'cold', '--', 'cat', '/srv/data']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout, 'kept on disk\n');
    await appPid(peer, 'cold');
    const answer = await eventually(async () => {
      const got = await viaProxy(proxyPort, 'cold', peer.token).catch(() => undefined);
      return got?.status === 200 ? got : undefined;
    }, 30_000, 'the restarted app to answer');
    assert.equal(answer.body, 'hello from cold\n');
  });
});

describe('a peer killed while its sprite sleeps warm', () => {
  let peer: PeerProcess | undefined;
  after(async () => {
    await peer?.stop();
    if (peer) await removeDataDir(peer.dataDir);
  });

  test('the next start thaws and clears the frozen cgroup; the sprite is cold and wakes on exec with its disk', async () => {
    const first = await startPeer({ poolDepth: 0, args: ['--warm-sleep-after', '1', '--cold-sleep-after', '3600'] });
    peer = first;
    const { id } = await webSprite(first, 'frozen');
    await eventually(async () => (await state(first, 'frozen')) === 'warm', 30_000, 'warm sleep');
    assert.equal(await freezer(first, id), 'FROZEN');
    await first.kill();
    // Killed while frozen, the sprite's processes cannot die until their cgroup is thawed.
    assert.equal(await freezer(first, id), 'FROZEN');
    const again = await startPeer({ dataDir: first.dataDir, poolDepth: 0, args: ['--warm-sleep-after', '1', '--cold-sleep-after', '3600'] });
    peer = again;
    assert.equal(await state(again, 'frozen'), 'cold');
    assert.equal(await freezer(again, id), undefined, 'the old container cgroup is gone');
    const exec = await again.cli(['exec', 'frozen', '--', 'cat', '/srv/data']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout, 'kept on disk\n');
    assert.equal(await state(again, 'frozen'), 'running');
  });
});

test('bad sleep flags: one line on stderr and a non-zero exit, before the peer starts', async () => {
  const word = await runCli(['peer', 'start', '--warm-sleep-after', 'soon'], {});
  assert.notEqual(word.code, 0);
  assert.match(word.stderr, /--warm-sleep-after must be a number of seconds/);
  assert.equal(word.stderr.trim().split('\n').length, 1);
  const order = await runCli(['peer', 'start', '--data-dir', '/tmp/sprite-no-such-peer', '--warm-sleep-after', '60', '--cold-sleep-after', '30'], {});
  assert.notEqual(order.code, 0);
  assert.match(order.stderr, /warm < cold/);
  assert.equal(order.stderr.trim().split('\n').length, 1);
});
