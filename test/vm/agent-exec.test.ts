import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { EXEC, execFrame } from '../../vm/fs-agent/exec-wire.ts';
import { agentProcess } from '../../vm/init/agent-exec.ts';
import type { ExecProcess } from '../../vm/init/exec-process.ts';

const AGENT = new URL('../../vm/fs-agent/main.ts', import.meta.url).pathname;

interface Ran {
  stdout: string;
  stderr: string;
  status: number;
}

function collect(proc: ExecProcess): Promise<Ran> {
  const out = { 1: [] as Buffer[], 2: [] as Buffer[] };
  proc.onOutput((stream, data) => out[stream].push(data));
  return new Promise((resolve) => proc.onExit((status) => resolve({
    stdout: Buffer.concat(out[1]).toString(), stderr: Buffer.concat(out[2]).toString(), status,
  })));
}

/**
 * The sprite agent's execs, with the agent as a local process (in a sprite it runs inside the
 * container; test/sdk/exec.test.ts and test/sdk/exec-agent.test.ts cover that) and sprite-init's side
 * (agentProcess) on the connections it dials.
 */
describe('sprite agent execs', () => {
  let agent: ChildProcess;
  let server: net.Server;
  const waiting = new Map<string, (socket: net.Socket) => void>();
  const secret = randomBytes(32);

  before(async () => {
    const name = `\0agent-exec-test-${process.pid}`;
    server = net.createServer((socket) => {
      socket.once('readable', () => {
        const proof = socket.read(48) as Buffer;
        assert.ok(proof.subarray(0, 32).equals(secret));
        const token = proof.subarray(32).toString('hex');
        socket.pause();
        waiting.get(token)!(socket);
        waiting.delete(token);
      });
    });
    await new Promise<void>((resolve) => server.listen(name, resolve));
    agent = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', AGENT], { stdio: ['pipe', 'inherit', 'inherit'], env: { ...process.env, BASE: 'from-agent' } });
    agent.stdin!.write(`${JSON.stringify({ socket: name, secret: secret.toString('hex') })}\n`);
  });
  after(() => {
    agent?.kill();
    server?.close();
  });

  const connect = (): Promise<net.Socket> => new Promise((resolve) => {
    const token = randomBytes(16).toString('hex');
    waiting.set(token, resolve);
    agent.stdin!.write(`dial ${token} exec\n`);
  });

  test('output, stdin to EOF, environment over the agent\'s own, cwd and exit codes', async () => {
    const proc = agentProcess(await connect(), {
      command: ['sh', '-c', 'echo "$BASE $GREETING $(pwd)"; cat; echo warn >&2; exit 3'], env: { GREETING: 'hi' }, dir: '/tmp',
    }, 0);
    const ran = collect(proc);
    proc.write(Buffer.from('typed'));
    proc.endInput();
    assert.deepEqual(await ran, { stdout: 'from-agent hi /tmp\ntyped', stderr: 'warn\n', status: 3 });
    assert.ok(proc.pid() > 0);
  });

  test('a missing program exits 127 as sh says; a missing directory 255', async () => {
    const missing = await collect(agentProcess(await connect(), { command: ['no-such-program'], dir: '/' }, 0));
    assert.equal(missing.status, 127);
    assert.match(missing.stderr, /no-such-program/);
    const nowhere = await collect(agentProcess(await connect(), { command: ['true'], dir: '/no/such/dir' }, 0));
    assert.equal(nowhere.status, 255);
    assert.match(nowhere.stderr, /exec failed/);
  });

  test('a command killed by a signal reports 128 + the signal', async () => {
    const ran = await collect(agentProcess(await connect(), { command: ['sh', '-c', 'kill -TERM $$'] }, 0));
    assert.equal(ran.status, 128 + 15);
  });

  test('an agent connection that ends without a status fails the exec with 255 and says why', async () => {
    const [ours, theirs] = await pair();
    const ran = collect(agentProcess(ours, { command: ['true'] }, 0));
    theirs.end(Buffer.concat([execFrame(EXEC.pid, Buffer.from([0, 0, 0, 7])), execFrame(EXEC.stdout, Buffer.from('partial'))]));
    const result = await ran;
    assert.equal(result.status, 255);
    assert.equal(result.stdout, 'partial');
    assert.match(result.stderr, /agent went away/);
  });

  test('frames the agent must not send cut the connection: an oversized frame, a second pid, a bad status', async () => {
    const bad = [
      Buffer.from([0xff, 0xff, 0xff, 0xff, EXEC.stdout]),
      Buffer.concat([execFrame(EXEC.pid, Buffer.from([0, 0, 0, 7])), execFrame(EXEC.pid, Buffer.from([0, 0, 0, 8]))]),
      execFrame(EXEC.exit, Buffer.from([1, 2])),
      execFrame(EXEC.pid, Buffer.from([0, 0, 0, 0])),
    ];
    for (const bytes of bad) {
      const [ours, theirs] = await pair();
      const ran = collect(agentProcess(ours, { command: ['true'] }, 0));
      theirs.on('error', () => undefined);
      theirs.write(bytes);
      assert.equal((await ran).status, 255, bytes.toString('hex'));
      theirs.destroy();
    }
  });
});

/** Two ends of a local connection, the first paused as the agents' handshake leaves it. */
async function pair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const theirs = await accepted;
  server.close();
  client.pause();
  return [client, theirs];
}
