import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { APIError, ExecError, SpritesClient, type PortWatchEvent, type Sprite, type SpriteCommand } from '@fly/sprites';
import WebSocket from 'ws';
import { createOn, eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

/** Text the command printed so far, and its text messages (session_info, ports, exit). */
interface Watched {
  out: () => string;
  messages: Array<Record<string, unknown>>;
}

function watch(cmd: SpriteCommand): Watched {
  let out = '';
  const messages: Array<Record<string, unknown>> = [];
  cmd.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  cmd.on('message', (message: Record<string, unknown>) => messages.push(message));
  return { out: () => out, messages };
}

/** Starts a command and waits until its WebSocket is open. */
async function started(cmd: SpriteCommand): Promise<SpriteCommand> {
  await once(cmd, 'spawn');
  return cmd;
}

/** Drops the client side of a command without ending it (the SDK has no detach call). */
function detach(cmd: SpriteCommand): void {
  (cmd as unknown as { wsCmd: { close(): void } }).wsCmd.close();
}

function sessionIdOf(watched: Watched): string | undefined {
  const info = watched.messages.find((m) => m.type === 'session_info');
  return info === undefined ? undefined : String(info.session_id);
}

describe('exec, sessions, ports and proxy through the SDK, on the owner and on another peer', () => {
  let owner: PeerProcess;
  let other: PeerProcess;
  /** The sprite as seen through its owner's API and through the other peer's. */
  let here: Sprite;
  let there: Sprite;

  before(async () => {
    owner = await startPeer({ poolDepth: 1 });
    other = await startPeer({ poolDepth: 0, join: owner });
    await createOn(owner, 'ex');
    // The other peer knows the sprite and accepts the owner's token once both have replicated.
    await eventually(async () => (await fetch(`${other.url}/v1/sprites/ex`, { headers: { authorization: `Bearer ${owner.token}` } })).status === 200, 20_000, 'the sprite on the other peer');
    here = new SpritesClient(owner.token, { baseURL: owner.url }).sprite('ex');
    there = new SpritesClient(owner.token, { baseURL: other.url }).sprite('ex');
  });
  after(async () => {
    for (const peer of [other, owner]) {
      await peer?.stop();
      if (peer) await removeDataDir(peer.dataDir);
    }
  });

  test('execFile and exec: output, exit codes, env and cwd, on either peer', async () => {
    const ok = await there.execFile('sh', ['-c', 'echo "$GREETING from $(pwd)"; echo warn >&2'], { env: { GREETING: 'hi' }, cwd: '/tmp' });
    assert.deepEqual(ok, { stdout: 'hi from /tmp\n', stderr: 'warn\n', exitCode: 0 });
    assert.equal((await here.exec('echo one two')).stdout, 'one two\n');
    const failed = await there.execFile('sh', ['-c', 'echo partial; exit 7']).catch((error: unknown) => error);
    assert.ok(failed instanceof ExecError);
    assert.equal(failed.exitCode, 7);
    assert.equal(failed.stdout, 'partial\n');
    const missing = await here.execFile('no-such-program').catch((error: unknown) => error);
    assert.ok(missing instanceof ExecError);
    assert.equal(missing.exitCode, 127);
  });

  test('spawn: stdin to EOF, and a large output arrives whole through the other peer', async () => {
    const cat = await started(there.spawn('sh', ['-c', 'cat; echo " (eof)"']));
    const watched = watch(cat);
    cat.stdin.end('piped in');
    assert.equal(await cat.wait(), 0);
    assert.equal(watched.out(), 'piped in (eof)\n');

    // One stdin write is one WebSocket message: 6 MiB is more than one frame to sprite-init.
    const counter = await started(there.spawn('wc', ['-c']));
    const counted = watch(counter);
    counter.stdin.end(Buffer.alloc(6 * 1024 * 1024, 0x61));
    assert.equal(await counter.wait(), 0);
    assert.equal(counted.out().trim(), String(6 * 1024 * 1024));

    const expected = Array.from({ length: 200_000 }, (_, i) => `${i + 1}\n`).join('');
    const big = await there.execFile('seq', ['1', '200000']);
    assert.equal(big.stdout.length, expected.length);
    assert.ok(big.stdout === expected);
  });

  test('tty: raw terminal output, resize, and the exit status in a text message', async () => {
    const script = 'echo ready; read a; stty size; read b; stty size; exit 3';
    const cmd = await started(here.spawn('sh', ['-c', script], { tty: true, rows: 30, cols: 100 }));
    const watched = watch(cmd);
    // runc sizes the terminal just after it starts the command: ask once the command runs.
    await eventually(() => watched.out().includes('ready'), 10_000, 'the shell');
    cmd.stdin.write('a\r');
    await eventually(() => watched.out().includes('30 100'), 10_000, 'the first size');
    cmd.resize(120, 40);
    cmd.stdin.write('b\r');
    // The SDK reads a TTY's status from the close code: 1000 is 0, anything else 1.
    assert.equal(await cmd.wait(), 1);
    assert.match(watched.out(), /40 120/);
    assert.deepEqual(watched.messages.find((m) => m.type === 'exit'), { type: 'exit', exit_code: 3 });
    const info = watched.messages.find((m) => m.type === 'session_info');
    assert.equal(info?.tty, true);
    assert.equal(info?.command, `sh -c ${script}`);
  });

  test('execFileHTTP: frames of stdout, stderr and exit, stdin from input, on either peer', async () => {
    const result = await there.execFileHTTP('sh', ['-c', 'cat; echo; echo oops >&2'], { input: 'from the body', cwd: '/' });
    assert.deepEqual(result, { stdout: 'from the body\n', stderr: 'oops\n', exitCode: 0 });
    const failed = await here.execFileHTTP('sh', ['-c', 'exit 4']).catch((error: unknown) => error);
    assert.ok(failed instanceof ExecError);
    assert.equal(failed.exitCode, 4);
    const bad = await there.execFileHTTP('true', [], { cwd: 'relative' }).catch((error: unknown) => error);
    assert.ok(bad instanceof APIError);
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.errorCode, 'ERR_BAD_REQUEST');
  });

  test('a terminal session: detach, listed, re-attach on the other peer with its output, kill with progress', async () => {
    const first = await started(here.createSession('sh', ['-c', 'read line; echo "got $line"; sleep 600']));
    const firstSeen = watch(first);
    const id = await eventually(() => sessionIdOf(firstSeen), 10_000, 'session_info');
    first.stdin.write('hello\r');
    await eventually(() => firstSeen.out().includes('got hello'), 10_000, 'the echo');
    detach(first);

    const listed = await eventually(async () => (await there.listSessions()).find((s) => s.id === id && !s.isActive), 10_000, 'the detached session');
    assert.equal(listed.tty, true);
    assert.equal(listed.workdir, '/root');
    assert.match(listed.command, /^sh -c read line/);
    assert.ok(listed.created instanceof Date && !Number.isNaN(listed.created.getTime()));

    const second = await there.attachSession(id);
    const secondSeen = watch(second);
    await eventually(() => secondSeen.out().includes('got hello'), 10_000, 'the replay');
    assert.ok((await here.listSessions()).find((s) => s.id === id)?.isActive);

    const events = [];
    for await (const event of await there.killSession(id, 'SIGTERM', '10s')) events.push(event);
    assert.deepEqual(events.map((e) => e.type), ['signal', 'exited', 'complete']);
    assert.equal(events[0]!.signal, 'SIGTERM');
    assert.ok((events[0]!.pid ?? 0) > 0);
    assert.equal(await second.wait(), 1);
    assert.equal((await here.listSessions()).some((s) => s.id === id), false);
  });

  test('a detachable session without a terminal keeps what it prints while detached; a kill escalates to SIGKILL', async () => {
    const cmd = await started(there.spawn('sh', ['-c', 'trap "" TERM; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo late; while true; do sleep 0.1; done'], { detachable: true }));
    const id = await eventually(async () => (await here.listSessions()).find((s) => s.command.includes('/tmp/go'))?.id, 10_000, 'the session');
    detach(cmd);
    await eventually(async () => (await here.listSessions()).find((s) => s.id === id && !s.isActive), 10_000, 'detached');
    await here.execFile('touch', ['/tmp/go']);
    const again = await here.attachSession(id);
    const seen = watch(again);
    await eventually(() => seen.out().includes('late'), 10_000, 'the output made while detached');
    const events = [];
    for await (const event of await here.killSession(id, 'TERM', '1s')) events.push(event);
    assert.deepEqual(events.map((e) => e.type), ['signal', 'timeout', 'killed', 'complete']);
    assert.equal(events.at(-1)!.exitCode, 137);
    await here.execFile('rm', ['/tmp/go']);
  });

  test('max_run_after_disconnect: a plain command dies with its client unless it is given time', async () => {
    const plain = await started(here.spawn('sleep', ['601']));
    const kept = await started(there.spawn('sleep', ['602'], { maxRunAfterDisconnect: '1h' }));
    const idOf = async (arg: string): Promise<string | undefined> => (await here.listSessions()).find((s) => s.command === `sleep ${arg}`)?.id;
    const plainId = await eventually(() => idOf('601'), 10_000, 'plain listed');
    const keptId = await eventually(() => idOf('602'), 10_000, 'kept listed');
    detach(plain);
    detach(kept);
    await eventually(async () => !(await here.listSessions()).some((s) => s.id === plainId), 15_000, 'the plain command ended');
    const detached = await eventually(async () => (await here.listSessions()).find((s) => s.id === keptId && !s.isActive), 10_000, 'the kept one detached');
    assert.equal(detached.id, keptId);
    const events = [];
    for await (const event of await here.killSession(keptId, 'KILL')) events.push(event);
    assert.deepEqual(events.at(-1), { type: 'complete', exitCode: 137, message: undefined, signal: undefined, pid: undefined });
  });

  test('watchPorts: a snapshot, then port_opened and port_closed; an exec gets port_opened for what it starts', async () => {
    const watcher = await there.watchPorts();
    try {
      const first = (await watcher.next()) as PortWatchEvent;
      assert.equal(first.type, 'port_list');
      const cmd = await started(here.spawn('httpd', ['-f', '-p', '8123'], { tty: true }));
      const seen = watch(cmd);
      const opened = await eventually(() => seen.messages.find((m) => m.type === 'port_opened' && m.port === 8123), 10_000, 'port_opened in the exec');
      assert.ok((opened.pid as number) > 0);
      assert.equal(typeof opened.address, 'string');
      const event = (await watcher.next()) as PortWatchEvent;
      assert.deepEqual(event, { type: 'port_opened', port: 8123, address: opened.address, pid: opened.pid });
      cmd.kill('SIGTERM');
      await cmd.wait();
      assert.equal(((await watcher.next()) as PortWatchEvent).type, 'port_closed');
    } finally {
      watcher.close();
    }
    const again = await here.watchPorts();
    try {
      const snapshot = (await again.next()) as PortWatchEvent;
      assert.deepEqual(snapshot, { type: 'port_list', ports: [] });
    } finally {
      again.close();
    }
  });

  test('proxyPort and proxyPorts reach ports inside the sprite through the other peer; refusals say why', async () => {
    await here.execFile('sh', ['-c', 'mkdir -p /www && echo proxied > /www/index.html && httpd -p 8124 -h /www && httpd -p 8125 -h /www']);
    const one = await there.proxyPort(0, 8124);
    const many = await there.proxyPorts([{ localPort: 0, remotePort: 8125 }, { localPort: 0, remotePort: 8124, remoteHost: '127.0.0.1' }]);
    try {
      for (const session of [one, ...many]) {
        const res = await fetch(`http://${session.localAddr()}/`);
        assert.equal(await res.text(), 'proxied\n');
      }
    } finally {
      for (const session of [one, ...many]) session.close();
    }
    const answer = async (target: object): Promise<Record<string, unknown>> => {
      const ws = new WebSocket(`${other.url.replace('http', 'ws')}/v1/sprites/ex/proxy`, { headers: { authorization: `Bearer ${owner.token}` } });
      await once(ws, 'open');
      ws.send(JSON.stringify(target));
      const [data] = (await once(ws, 'message')) as [Buffer];
      ws.close();
      return JSON.parse(data.toString()) as Record<string, unknown>;
    };
    assert.deepEqual(await answer({ host: 'localhost', port: 8124 }), { status: 'connected', target: 'localhost:8124' });
    const refused = await answer({ host: '127.0.0.1', port: 8999 });
    assert.equal(refused.status, 'error');
    assert.match(String(refused.message), /ECONNREFUSED/);
    const outside = await answer({ host: 'example.com', port: 80 });
    assert.equal(outside.status, 'error');
    assert.match(String(outside.message), /localhost or an IP address/);
    await here.execFile('killall', ['httpd']);
  });

  test('control mode: execs one after another over one WebSocket, through the other peer', async () => {
    const sprite = new SpritesClient(owner.token, { baseURL: other.url, controlMode: true }).sprite('ex');
    assert.equal(sprite.useControlMode(), true);
    assert.equal(sprite.hasControlConnection(), false);
    try {
      assert.deepEqual(await sprite.execFile('sh', ['-c', 'echo "via $HOW"; echo e >&2'], { env: { HOW: 'control' } }), { stdout: 'via control\n', stderr: 'e\n', exitCode: 0 });
      assert.equal((await sprite.execFile('echo', ['again'])).stdout, 'again\n');
      const cc = await sprite.getControlConnection();
      assert.equal(sprite.hasControlConnection(), true, 'the execs above opened it');
      const op = await cc.startOp('exec', { cmd: ['sh', '-c', 'read x; echo "tty $x"; exit 5'], tty: true });
      let out = '';
      op.on('stdout', (data: Buffer) => (out += data.toString()));
      op.write(Buffer.from('on\r'));
      assert.equal(await op.wait(), 5);
      assert.match(out, /tty on/);
      const refused = await cc.startOp('exec', { cmd: ['ls'], rows: 5000, tty: true });
      const error = await new Promise<Error>((resolve) => refused.once('error', resolve));
      assert.match(error.message, /rows must be 1-1000/);
    } finally {
      sprite.closeControlConnection();
    }
    assert.equal(sprite.hasControlConnection(), false);
  });

  test('errors: unknown sessions are 404, bad parameters 400, as JSON before any upgrade', async () => {
    const unknown = await there.killSession('424242').catch((error: unknown) => error);
    assert.ok(unknown instanceof APIError);
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.errorCode, 'ERR_SESSION_NOT_FOUND');
    const badSignal = await here.killSession('1', 'SIGBOGUS').catch((error: unknown) => error);
    assert.ok(badSignal instanceof APIError);
    assert.equal(badSignal.statusCode, 400);
    const refused = async (path: string): Promise<{ status: number; body: Record<string, unknown> }> => {
      const ws = new WebSocket(`${other.url.replace('http', 'ws')}${path}`, { headers: { authorization: `Bearer ${owner.token}` } });
      ws.on('error', () => undefined);
      const [, res] = (await once(ws, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage];
      let body = '';
      for await (const chunk of res) body += String(chunk);
      ws.terminate();
      return { status: res.statusCode ?? 0, body: JSON.parse(body) as Record<string, unknown> };
    };
    assert.deepEqual(await refused('/v1/sprites/ex/exec/424242'), { status: 404, body: { error: 'ERR_SESSION_NOT_FOUND', message: 'no exec session 424242' } });
    for (const query of ['', '?cmd=ls&rows=0', '?cmd=ls&tty=maybe', '?cmd=ls&max_run_after_disconnect=soon', '?cmd=ls&env=1A=b', '?cmd=ls&dir=tmp']) {
      const answer = await refused(`/v1/sprites/ex/exec${query}`);
      assert.equal(answer.status, 400, query);
      assert.equal(answer.body.error, 'ERR_BAD_REQUEST');
    }
    const spawnFailed = await new Promise<unknown>((resolve) => {
      const cmd = there.spawn('ls', [], { rows: 5000, tty: true });
      // The SDK reports a refused upgrade more than once (error, then close).
      cmd.on('error', resolve);
    });
    assert.ok(spawnFailed instanceof Error);
    await assert.rejects(new SpritesClient(owner.token, { baseURL: other.url }).sprite('nope').listSessions(), /404/);
  });
});
