import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { FsError, fsRequest, jsonLines } from '../../vm/fs-client.ts';

const AGENT = new URL('../../vm/fs-agent/main.ts', import.meta.url).pathname;

/**
 * The file agent on its own, as a local process in a scratch directory (in a sprite, sprite-init
 * starts it inside the container; see test/sdk/fs.test.ts): its operations, errors and wire format.
 */
describe('file agent', () => {
  let dir: string;
  let agent: ChildProcess;
  let server: net.Server;
  const waiting = new Map<string, (socket: net.Socket) => void>();
  const secret = randomBytes(32);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fs-agent-'));
    const name = `\0fs-agent-test-${process.pid}`;
    server = net.createServer((socket) => {
      socket.once('readable', () => {
        const proof = socket.read(48) as Buffer;
        assert.ok(proof.subarray(0, 32).equals(secret));
        const token = proof.subarray(32).toString('hex');
        waiting.get(token)!(socket);
        waiting.delete(token);
      });
    });
    await new Promise<void>((resolve) => server.listen(name, resolve));
    agent = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', AGENT], { stdio: ['pipe', 'inherit', 'inherit'] });
    agent.stdin!.write(`${JSON.stringify({ socket: name, secret: secret.toString('hex') })}\n`);
  });
  after(async () => {
    agent?.kill();
    server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const connect = (kind = 'fs'): Promise<net.Socket> => new Promise((resolve) => {
    const token = randomBytes(16).toString('hex');
    waiting.set(token, resolve);
    agent.stdin!.write(`dial ${token} ${kind}\n`);
  });
  const call = async (request: object, body?: Buffer): Promise<any> => {
    const socket = await connect();
    try {
      const { result, upload } = await fsRequest(socket, request, body ? Readable.from([body]) : undefined);
      await upload?.done;
      return result;
    } finally {
      socket.destroy();
    }
  };
  const lines = async (request: object): Promise<any[]> => {
    const socket = await connect();
    await fsRequest(socket, request);
    const all: unknown[] = [];
    for await (const line of jsonLines(socket)) all.push(line);
    return all;
  };
  const failure = async (request: object): Promise<FsError> => {
    try {
      await call(request);
    } catch (error) {
      assert.ok(error instanceof FsError, String(error));
      return error;
    }
    assert.fail('expected an error');
  };

  test('writes with parents and mode, reads back', async () => {
    const path = join(dir, 'a/b/file.txt');
    const written = await call({ op: 'write', path, mode: 0o600, mkdirParents: true }, Buffer.from('hello'));
    assert.deepEqual(written, { path, size: 5, mode: '0600' });
    assert.equal((await stat(join(dir, 'a/b'))).mode & 0o777, 0o700);
    const socket = await connect();
    const { result } = await fsRequest(socket, { op: 'read', path });
    assert.deepEqual(result, { size: 5 });
    const chunks: Buffer[] = [];
    for await (const chunk of socket) chunks.push(chunk as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), 'hello');
  });

  test('a write without mkdirParents makes one missing level, not two', async () => {
    await call({ op: 'write', path: join(dir, 'one/.keep') }, Buffer.alloc(0));
    assert.ok((await stat(join(dir, 'one'))).isDirectory());
    assert.equal((await failure({ op: 'write', path: join(dir, 'x/y/.keep') })).code, 'ENOENT');
  });

  test('lists a directory, recursively and by pattern; a file lists itself', async () => {
    await writeFile(join(dir, 'a/top.md'), 'x');
    const names = (await lines({ op: 'list', path: join(dir, 'a') })).map((e) => e.name);
    assert.deepEqual(names, ['b', 'top.md']);
    const deep = await lines({ op: 'list', path: join(dir, 'a'), recursive: true, pattern: '*.txt' });
    assert.deepEqual(deep.map((e) => [e.name, e.type, e.size]), [['b/file.txt', 'file', 5]]);
    const self = await lines({ op: 'list', path: join(dir, 'a/top.md') });
    assert.equal(self.length, 1);
    assert.equal(self[0].isDir, false);
    assert.match(self[0].mode, /^0[0-7]{3}$/);
  });

  test('errors carry errno codes', async () => {
    assert.equal((await failure({ op: 'read', path: join(dir, 'missing') })).code, 'ENOENT');
    assert.equal((await failure({ op: 'read', path: join(dir, 'a') })).code, 'EISDIR');
    assert.equal((await failure({ op: 'read', path: join(dir, 'a/top.md/x') })).code, 'ENOTDIR');
    assert.equal((await failure({ op: 'write', path: join(dir, 'a/top.md/.keep'), mkdirParents: true })).code, 'EEXIST');
    assert.equal((await failure({ op: 'delete', path: join(dir, 'a') })).code, 'ENOTEMPTY');
    assert.equal((await failure({ op: 'read', path: 'relative' })).code, 'EINVAL');
  });

  test('copy, rename, chmod and delete trees', async () => {
    await symlink('top.md', join(dir, 'a/link'));
    const copied = await call({ op: 'copy', source: join(dir, 'a'), dest: join(dir, 'a/inside'), recursive: true });
    // The copy does not copy itself: a, b, file.txt, link, top.md.
    assert.equal(copied.count, 5);
    assert.equal(await readFile(join(dir, 'a/inside/b/file.txt'), 'utf8'), 'hello');
    assert.equal((await failure({ op: 'copy', source: join(dir, 'a'), dest: join(dir, 'c') })).code, 'EISDIR');
    await call({ op: 'rename', source: join(dir, 'a/inside'), dest: join(dir, 'moved') });
    const chmod = await call({ op: 'chmod', path: join(dir, 'moved'), mode: 0o750, recursive: true });
    assert.deepEqual(chmod, { path: join(dir, 'moved'), mode: '0750', count: 4 });
    assert.equal((await stat(join(dir, 'moved/b/file.txt'))).mode & 0o777, 0o750);
    const deleted = await call({ op: 'delete', path: join(dir, 'moved'), recursive: true });
    assert.deepEqual(deleted, { deleted: [join(dir, 'moved')], count: 5 });
    await mkdir(join(dir, 'empty'));
    assert.equal((await call({ op: 'delete', path: join(dir, 'empty') })).count, 1);
  });

  test('chown by number and by name', async () => {
    const result = await call({ op: 'chown', path: join(dir, 'a/top.md'), uid: 'root', gid: 0 });
    assert.deepEqual(result, { path: join(dir, 'a/top.md'), uid: 0, gid: 0, count: 1 });
    assert.equal((await failure({ op: 'chown', path: join(dir, 'a/top.md'), uid: 'no-such-user' })).code, 'EINVAL');
  });

  test('a large write streams and reads back whole', async () => {
    const big = randomBytes(8 * 1024 * 1024 + 3);
    const path = join(dir, 'big.bin');
    const socket = await connect();
    const { upload } = await fsRequest(socket, { op: 'write', path }, Readable.from([big.subarray(0, 5_000_000), big.subarray(5_000_000)]));
    assert.equal(await upload!.done, big.length);
    socket.destroy();
    assert.ok((await readFile(path)).equals(big));
  });
});
