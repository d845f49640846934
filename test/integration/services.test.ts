import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { getViaSocket } from '../helpers/socket.ts';

const CLI = new URL('../../node/cli/main.ts', import.meta.url).pathname;

describe('services, logs, port forwarding and sessions', () => {
  let peer: PeerProcess;
  let spriteId: string;
  before(async () => {
    peer = await startPeer({ poolDepth: 1 });
    const created = await peer.api('POST', '/v1/sprites', { name: 'svc' });
    assert.equal(created.status, 201);
    spriteId = created.body.id;
    const page = await peer.cli(['exec', 'svc', '--', 'sh', '-c', 'mkdir -p /www && echo "hello from svc" > /www/index.html']);
    assert.equal(page.code, 0, page.stderr);
  });
  after(async () => {
    await peer?.stop();
    if (peer) await removeDataDir(peer.dataDir);
  });

  test('a service on the HTTP port answers through the port socket', async () => {
    const created = await peer.cli(['services', 'create', 'svc', 'web', '--http-port', '8080', '--', 'httpd', '-f', '-p', '8080', '-h', '/www']);
    assert.equal(created.code, 0, created.stderr);
    const socket = join(peer.dataDir, 'sprites', spriteId, 'run', 'http.sock');
    const body = await eventually(() => getViaSocket(socket).catch(() => undefined), 10_000, 'httpd to answer');
    assert.equal(body, 'hello from svc\n');
  });

  test('only one service may own the HTTP port', async () => {
    const second = await peer.cli(['services', 'create', 'svc', 'web2', '--http-port', '8080', '--', 'httpd', '-f', '-p', '8081']);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /web already owns the HTTP port/);
    const api = await peer.api('PUT', '/v1/sprites/svc/services/web2', { cmd: 'true', http_port: 8080 });
    assert.equal(api.status, 409);
    assert.equal(api.body.error, 'ERR_HTTP_PORT_TAKEN');
  });

  test('a crashing service is restarted with backoff and its output logged', async () => {
    const created = await peer.cli(['services', 'create', 'svc', 'crashy', '--', 'sh', '-c', 'echo "run at $(date +%s%N)"; exit 3']);
    assert.equal(created.code, 0, created.stderr);
    const status = await eventually(async () => {
      const got = await peer.api('GET', '/v1/sprites/svc/services/crashy');
      return got.body.state.restart_count >= 2 ? got.body.state : undefined;
    }, 15_000, 'two restarts');
    assert.ok(['failed', 'starting', 'running'].includes(status.status));
    if (status.status === 'failed') assert.equal(status.error, 'exited with status 3');
    const logs = await peer.cli(['logs', 'svc', 'crashy']);
    assert.ok(logs.stdout.split('\n').filter((line) => line.startsWith('run at')).length >= 2, logs.stdout);
    const inside = await peer.cli(['exec', 'svc', '--', 'cat', '/.sprite/logs/services/crashy.log']);
    assert.match(inside.stdout, /^run at/);
    const initLog = await peer.cli(['logs', 'svc']);
    assert.match(initLog.stdout, /service crashy exited \(3\)/);
    assert.equal((await peer.cli(['services', 'delete', 'svc', 'crashy'])).code, 0);
    assert.equal((await peer.api('GET', '/v1/sprites/svc/services/crashy')).status, 404);
  });

  test('logs -f follows new output', async () => {
    await peer.cli(['services', 'create', 'svc', 'ticker', '--', 'sh', '-c', 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done']);
    const child = spawn(process.execPath, [CLI, 'logs', 'svc', 'ticker', '-f'], { env: { ...process.env, SPRITE_API: peer.url, SPRITE_TOKEN: peer.token } });
    const lines = createInterface({ input: child.stdout });
    const seen: string[] = [];
    await new Promise<void>((resolve) => lines.on('line', (line) => {
      seen.push(line);
      if (seen.length >= 4) resolve();
    }));
    child.kill();
    assert.deepEqual(seen.slice(0, 4).map((line) => line.replace(/\d+$/, 'N')), ['tick N', 'tick N', 'tick N', 'tick N']);
    await peer.cli(['services', 'delete', 'svc', 'ticker']);
  });

  test('sprite-env inside the sprite manages services over /.sprite/api.sock', async () => {
    const info = await peer.cli(['exec', 'svc', '--', 'sprite-env', 'info']);
    assert.equal(info.code, 0, info.stderr);
    assert.equal(JSON.parse(info.stdout).name, 'svc');
    const create = await peer.cli(['exec', 'svc', '--', 'sprite-env', 'services', 'create', 'inner', '--', 'sleep', '1000']);
    assert.equal(create.code, 0, create.stderr);
    const list = await peer.cli(['services', 'list', 'svc', '--json']);
    assert.ok(JSON.parse(list.stdout).some((s: { name: string }) => s.name === 'inner'));
    const remove = await peer.cli(['exec', 'svc', '--', 'sprite-env', 'services', 'delete', 'inner']);
    assert.equal(remove.code, 0, remove.stderr);
    const bad = await peer.cli(['exec', 'svc', '--', 'sprite-env', 'services', 'get', 'nope']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no service named nope/);
  });

  test('sprite proxy forwards a local port to a port inside the sprite', async () => {
    await peer.cli(['services', 'create', 'svc', 'other', '--', 'httpd', '-f', '-p', '9000', '-h', '/www']);
    const child = spawn(process.execPath, [CLI, 'proxy', 'svc', '9000', '0'], { env: { ...process.env, SPRITE_API: peer.url, SPRITE_TOKEN: peer.token } });
    try {
      const lines = createInterface({ input: child.stdout });
      const port = await new Promise<number>((resolve) => lines.on('line', (line) => {
        const match = /listening on 127\.0\.0\.1:(\d+)/.exec(line);
        if (match) resolve(Number(match[1]));
      }));
      const body = await eventually(async () => {
        const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
        return res?.ok ? res.text() : undefined;
      }, 10_000, 'forwarded httpd');
      assert.equal(body, 'hello from svc\n');
    } finally {
      child.kill();
    }
  });

  test('a detachable terminal session survives its client, is listed, re-attached with replay, and killed with the CLI', async () => {
    const headers = { authorization: `Bearer ${peer.token}` };
    const wsUrl = peer.url.replace('http', 'ws');
    const first = new WebSocket(`${wsUrl}/v1/sprites/svc/exec?cmd=cat&tty=true&detachable=true`, { headers });
    const sessionId = await new Promise<string>((resolve, reject) => {
      first.on('message', (data, isBinary) => {
        const message = isBinary ? undefined : JSON.parse(data.toString());
        if (message?.type === 'session_info') resolve(String(message.session_id));
      });
      first.on('error', reject);
    });
    let echoed = '';
    first.on('message', (data, isBinary) => {
      if (isBinary) echoed += (data as Buffer).toString();
    });
    // With a terminal, binary messages are raw terminal bytes both ways.
    first.send(Buffer.from('remember me\r'));
    await eventually(() => echoed.includes('remember me'), 5000, 'echo');
    first.close();
    await new Promise((resolve) => first.once('close', resolve));

    const listed = await eventually(async () => {
      const result = await peer.cli(['sessions', 'list', 'svc', '--json']);
      const sessions = JSON.parse(result.stdout).sessions as { id: string; is_active: boolean; tty: boolean }[];
      return sessions.find((s) => s.id === sessionId && !s.is_active);
    }, 5000, 'detached session listed');
    assert.equal(listed.tty, true);

    const second = new WebSocket(`${wsUrl}/v1/sprites/svc/exec/${sessionId}`, { headers });
    let replay = '';
    second.on('message', (data, isBinary) => {
      if (isBinary) replay += (data as Buffer).toString();
    });
    await eventually(() => replay.includes('remember me'), 5000, 'replay');
    const closed = new Promise((resolve) => second.once('close', resolve));
    const killed = await peer.cli(['sessions', 'kill', 'svc', sessionId]);
    assert.equal(killed.code, 0, killed.stderr);
    assert.match(killed.stderr, /Signaling SIGTERM to process group \d+/);
    await closed;
    const after = await peer.api('GET', '/v1/sprites/svc/exec');
    assert.deepEqual(after.body.sessions, []);
    assert.equal((await peer.api('POST', `/v1/sprites/svc/exec/${sessionId}/kill`)).status, 404);
  });
});
