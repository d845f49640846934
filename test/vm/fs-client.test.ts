import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ANSWERS, checked } from '../../node/api/fs-wire.ts';
import { FsError, fsRequest, jsonLines } from '../../vm/fs-client.ts';

/** A frame as the agent sends its answer: u32 length, then the bytes. */
function frame(text: string | Buffer): Buffer {
  const body = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/**
 * The peer's side of the file agent against a hostile agent (the sprite's root can replace it):
 * whatever it answers is bounded and checked, and anything malformed is ERR_FS_AGENT.
 */
describe('file agent answers are untrusted', () => {
  let dir: string;
  let server: net.Server;
  let answer: (socket: net.Socket) => void = () => undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fs-client-'));
    server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => answer(socket));
    });
    await new Promise<void>((resolve) => server.listen(join(dir, 'agent.sock'), resolve));
  });
  after(async () => {
    server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const ask = async (reply: (socket: net.Socket) => void): Promise<{ result: unknown; socket: net.Socket }> => {
    answer = reply;
    const socket = net.connect(join(dir, 'agent.sock'));
    const { result } = await fsRequest(socket, { op: 'read', path: '/x' });
    return { result, socket };
  };
  const agentFault = { code: 'ERR_FS_AGENT' };

  test('a header that is not JSON, malformed, or too large', async () => {
    await assert.rejects(ask((s) => s.end(frame('not json'))), agentFault);
    await assert.rejects(ask((s) => s.end(frame('{"ok": true, "result": 5}'))), agentFault);
    await assert.rejects(ask((s) => s.end(frame('{"ok": false, "error": {"code": "ENOENT; rm -rf /", "message": "x"}}'))), agentFault);
    await assert.rejects(ask((s) => s.end(frame('{"ok": false, "error": {"code": "ENOENT"}}'))), agentFault);
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(64 * 1024 * 1024);
    await assert.rejects(ask((s) => s.end(huge)), agentFault);
    await assert.rejects(ask((s) => s.end()), agentFault);
  });

  test('an error is passed on as FsError with its message bounded', async () => {
    const long = 'x'.repeat(100_000);
    const error = await ask((s) => s.end(frame(JSON.stringify({ ok: false, error: { code: 'EACCES', message: long, path: '/p' } })))).catch((e: unknown) => e);
    assert.ok(error instanceof FsError);
    assert.equal(error.code, 'EACCES');
    assert.equal(error.message.length, 1024);
    assert.equal(error.path, '/p');
  });

  test('lines: an endless line or one that is not JSON', async () => {
    const { socket } = await ask((s) => {
      s.write(frame('{"ok": true, "result": {"path": "/"}}'));
      s.end(Buffer.alloc(200 * 1024, 'a'));
    });
    await assert.rejects(async () => {
      for await (const line of jsonLines(socket)) assert.fail(`no line expected, got ${String(line)}`);
    }, agentFault);
    const second = await ask((s) => {
      s.write(frame('{"ok": true, "result": {"path": "/"}}'));
      s.end('{"name": "a"}\n{oops\n');
    });
    const seen: unknown[] = [];
    await assert.rejects(async () => {
      for await (const line of jsonLines(second.socket)) seen.push(line);
    }, agentFault);
    assert.deepEqual(seen, [{ name: 'a' }]);
  });

  test('results and entries must have the documented shape', () => {
    const entry = { name: 'a', path: '/a', type: 'file', size: 1, mode: '0644', modTime: '2026-01-01T00:00:00.000Z', isDir: false };
    assert.deepEqual(checked(ANSWERS.entry, entry), entry);
    for (const bad of [{ ...entry, size: -1 }, { ...entry, mode: '644; x' }, { ...entry, type: 'door' }, { ...entry, extra: 1 }, { ...entry, name: 'x'.repeat(5000) }]) {
      assert.throws(() => checked(ANSWERS.entry, bad), agentFault);
    }
    assert.throws(() => checked(ANSWERS.read, { size: 1.5 }), agentFault);
    assert.throws(() => checked(ANSWERS.write, { path: '/a', size: 1, mode: '0644', more: true }), agentFault);
  });
});
