import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { SpriteFilesystem } from '@fly/sprites';
import type { PeerProcess } from '../helpers/peer.ts';
import { fsError, inside } from './fs-helpers.ts';
import { twoPeers, type TwoPeers } from './helpers.ts';

const MiB = 1024 * 1024;

const code = async (call: Promise<unknown>): Promise<string> => (await fsError(call)).code;

/** A peer process's resident memory now and its peak since the last reset, in bytes. */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/**
 * What the filesystem API must not do: reach outside the sprite through paths, symlinks or /proc,
 * or hold a whole file in a peer's memory.
 */
describe('filesystem API: confinement and streaming', () => {
  let peers: TwoPeers;
  let owner: PeerProcess;
  let other: PeerProcess;
  let fs: SpriteFilesystem;
  let canary: string;
  const sh = (script: string): Promise<string> => inside(peers.viaOwner, script);

  before(async () => {
    peers = await twoPeers('fsb');
    ({ owner, other } = peers);
    fs = peers.viaOther.filesystem();
    canary = await mkdtemp('/tmp/fs-canary-');
    await writeFile(join(canary, 'target.txt'), 'host secret');
  });
  after(async () => {
    await peers?.stop();
    if (canary) await rm(canary, { recursive: true, force: true });
  });

  test('.., absolute and relative symlinks, symlinked parents and /proc all resolve inside the sprite', async () => {
    const hostPasswd = await readFile('/etc/passwd', 'utf8');
    const hostPasswdTime = (await stat('/etc/passwd')).mtimeMs;
    const passwd = await sh('hostname > /etc/hostname; cat /etc/passwd');
    assert.notEqual(passwd, hostPasswd);
    await sh(`mkdir -p /attack && cd /attack && ln -s / root && ln -s ../../../../../../.. up && ln -s ${canary}/target.txt file && ln -s ${canary} dir && ln -s /etc etc`);

    // Reads: every way out lands on the sprite's own files.
    assert.equal(await fs.readFile('/../../../../etc/passwd', 'utf8'), passwd);
    assert.equal(await peers.viaOwner.filesystem('/attack').readFile('../../../../../../etc/passwd', 'utf8'), passwd);
    assert.equal(await fs.readFile('/attack/root/etc/passwd', 'utf8'), passwd);
    assert.equal(await fs.readFile('/attack/up/etc/hostname', 'utf8'), 'fsb\n');
    assert.equal(await fs.readFile('/attack/etc/passwd', 'utf8'), passwd);
    assert.equal(await fs.readFile('/proc/self/root/etc/passwd', 'utf8'), passwd);
    assert.equal(await fs.readFile('/proc/1/root/etc/hostname', 'utf8'), 'fsb\n');
    assert.equal(await fs.readFile('/proc/self/cwd/attack/up/etc/passwd', 'utf8'), passwd);
    const root = await fs.readdir('/attack/up');
    assert.ok(root.includes('.sprite') && !root.includes('work'), root.join(' '));
    assert.equal(await code(fs.readFile('/attack/file')), 'ENOENT');
    assert.equal(await code(fs.readFile(join(owner.dataDir, 'token'))), 'ENOENT');

    // Writes through the same links land in the sprite too.
    assert.equal(await code(fs.writeFile('/attack/file', 'pwned')), 'ENOENT');
    await fs.writeFile(`/attack/root${canary}/target.txt`, 'inside');
    assert.equal(await fs.readFile('/attack/file', 'utf8'), 'inside');
    await fs.writeFile('/attack/file', 'through the link');
    await fs.appendFile('/attack/dir/target.txt', '!');
    await fs.writeFile(`/proc/self/root${canary}/proc.txt`, 'via proc');
    await fs.writeFile(`/attack/up/attack/up${canary}/up.txt`, 'via up');
    await fs.copyFile('/attack/etc/passwd', '/attack/dir/copied');
    await fs.rename('/attack/dir/copied', `/attack/root/tmp/renamed-${process.pid}`);
    await fs.chmod('/attack/dir', 0o777);
    await fs.chown('/attack/file', { uid: 0, gid: 0 });
    // Deleting a link to / removes the link, not what it points to.
    await fs.rm('/attack/root', { recursive: true });
    assert.equal(await fs.readFile('/etc/passwd', 'utf8'), passwd);
    assert.equal(await sh(`cd ${canary} && ls && cat target.txt && stat -c %a . && cat /tmp/renamed-${process.pid}`), `proc.txt\ntarget.txt\nup.txt\nthrough the link!777\n${passwd}`);

    // The host saw none of it.
    assert.deepEqual(await readdir(canary), ['target.txt']);
    assert.equal(await readFile(join(canary, 'target.txt'), 'utf8'), 'host secret');
    assert.equal((await stat(canary)).mode & 0o777, 0o700);
    assert.equal(await readFile('/etc/passwd', 'utf8'), hostPasswd);
    assert.equal((await stat('/etc/passwd')).mtimeMs, hostPasswdTime);
    await assert.rejects(stat(`/tmp/renamed-${process.pid}`), { code: 'ENOENT' });
  });

  test('a 1 GiB file streams in and out through the peer that does not own the sprite, in bounded peer memory', async (t) => {
    const peers = [owner, other].map((peer) => peer.process.pid!);
    // Reset each peer's peak resident size to what it holds now.
    for (const pid of peers) writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const before = peers.map((pid) => memory(pid).rss);

    const block = randomBytes(MiB);
    const sent = createHash('sha256');
    const blocks = function* (): Generator<Buffer> {
      for (let i = 0; i < 1024; i++) {
        const chunk = Buffer.from(block);
        chunk.writeUInt32BE(i, 0);
        sent.update(chunk);
        yield chunk;
      }
    };
    const url = `${other.url}/v1/sprites/fsb/fs/write?path=/big/file.bin&mkdirParents=true`;
    const answer = await new Promise<IncomingMessage>((resolve, reject) => {
      // No content-length: the body arrives chunked, as a stream does.
      const req = http.request(url, { method: 'PUT', headers: { authorization: `Bearer ${owner.token}` } }, resolve);
      req.on('error', reject);
      Readable.from(blocks()).pipe(req);
    });
    let text = '';
    for await (const chunk of answer) text += chunk;
    assert.equal(answer.statusCode, 200, text);
    assert.deepEqual(JSON.parse(text), { path: '/big/file.bin', size: 1024 * MiB, mode: '0644' });

    const got = createHash('sha256');
    let size = 0;
    const read = await new Promise<IncomingMessage>((resolve, reject) => {
      http.get(`${other.url}/v1/sprites/fsb/fs/read?path=/big/file.bin`, { headers: { authorization: `Bearer ${owner.token}` } }, resolve).on('error', reject);
    });
    assert.equal(read.statusCode, 200);
    assert.equal(read.headers['content-length'], String(1024 * MiB));
    for await (const chunk of read) {
      got.update(chunk);
      size += chunk.length;
    }
    assert.equal(size, 1024 * MiB);
    assert.equal(got.digest('hex'), sent.digest('hex'));

    peers.forEach((pid, i) => {
      const growth = memory(pid).peak - before[i]!;
      t.diagnostic(`peer ${pid}: peak resident size grew by ${Math.round(growth / MiB)} MiB`);
      assert.ok(growth < 256 * MiB, `peer ${pid} grew by ${Math.round(growth / MiB)} MiB while 1 GiB went through it`);
    });
    await fs.rm('/big', { recursive: true });
  });
});
