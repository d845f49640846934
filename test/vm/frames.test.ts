import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { controlFrame, decodeControl, MAX_FRAME, messageFrame, readFrames, readOneFrame, streamFrame, CONTROL } from '../../vm/frames.ts';
import { decodeMessage } from '../../vm/frames.ts';

async function socketPair(): Promise<{ a: net.Socket; b: net.Socket; close: () => void }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const a = net.connect(port, '127.0.0.1');
  const b = await accepted;
  return { a, b, close: () => { a.destroy(); b.destroy(); server.close(); } };
}

test('a request frame, then stream frames split at arbitrary byte boundaries', async () => {
  const { a, b, close } = await socketPair();
  const bytes = Buffer.concat([messageFrame({ op: 'exec', command: ['ls'] }), streamFrame(1, Buffer.from('hello')), controlFrame({ type: 'resize', cols: 3 })]);
  // Dribble the bytes one at a time: framing must not depend on chunking.
  for (const byte of bytes) a.write(Buffer.of(byte));
  const first = decodeMessage(await readOneFrame(b));
  assert.deepEqual(first, { op: 'exec', command: ['ls'] });
  const rest: Buffer[] = [];
  await new Promise<void>((resolve) => readFrames(b, (payload) => {
    rest.push(Buffer.from(payload));
    if (rest.length === 2) resolve();
  }));
  assert.equal(rest[0]![0], 1);
  assert.equal(rest[0]!.subarray(1).toString(), 'hello');
  assert.equal(rest[1]![0], CONTROL);
  assert.deepEqual(decodeControl(rest[1]!), { type: 'resize', cols: 3 });
  close();
});

test('an oversized frame closes the connection instead of buffering it', async () => {
  const { a, b, close } = await socketPair();
  const head = Buffer.alloc(4);
  head.writeUInt32BE(MAX_FRAME + 1);
  a.write(head);
  await assert.rejects(readOneFrame(b), /exceeds/);
  close();
});
