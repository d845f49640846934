import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FilesystemWatchEvent, Sprite, SpriteFilesystem } from '@fly/sprites';
import { eventually, type PeerProcess } from '../helpers/peer.ts';
import { fsError, inside } from './fs-helpers.ts';
import { twoPeers, type TwoPeers } from './helpers.ts';

/**
 * The SDK's filesystem object against two peers: `owner` runs the sprite, `other` hands every call
 * to it. Each method runs through both at least once.
 */
describe('filesystem API through the SDK', () => {
  let peers: TwoPeers;
  let owner: PeerProcess;
  let other: PeerProcess;
  let sprite: Sprite;
  let viaOwner: SpriteFilesystem;
  let viaOther: SpriteFilesystem;
  const sh = (script: string): Promise<string> => inside(sprite, script);

  before(async () => {
    peers = await twoPeers('fsa');
    ({ owner, other, viaOwner: sprite } = peers);
    viaOwner = peers.viaOwner.filesystem();
    viaOther = peers.viaOther.filesystem();
  });
  after(async () => {
    await peers?.stop();
  });

  test('writeFile and readFile: text, bytes, mode, workingDir', async () => {
    await viaOther.writeFile('/work/hello.txt', 'héllo wörld\n', { mode: 0o640 });
    assert.equal(await viaOwner.readFile('/work/hello.txt', 'utf8'), 'héllo wörld\n');
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await viaOwner.writeFile('/work/bytes.bin', bytes);
    assert.ok((await viaOther.readFile('/work/bytes.bin', null)).equals(bytes));
    const stats = await viaOther.stat('/work/hello.txt');
    assert.equal(stats.size, Buffer.byteLength('héllo wörld\n'));
    assert.equal(stats.mode & 0o777, 0o640);
    assert.ok(stats.isFile() && !stats.isDirectory());
    assert.ok(Math.abs(stats.mtime.getTime() - Date.now()) < 60_000);
    // Relative paths resolve against the filesystem's working directory.
    const work = peers.viaOther.filesystem('/work');
    await work.writeFile('rel/inner.txt', 'relative');
    assert.equal(await viaOwner.readFile('/work/rel/inner.txt', 'utf8'), 'relative');
    assert.equal(await sh('cat /work/rel/inner.txt; stat -c %a /work/hello.txt'), 'relative640\n');
    await viaOwner.writeFile('/work/empty', '');
    assert.equal((await viaOther.readFile('/work/empty', null)).length, 0);
  });

  test('readdir: names, file types, recursive, pattern', async () => {
    await sh('mkdir -p /tree/a/b && echo 1 > /tree/a/one.md && echo 2 > /tree/a/b/two.md && echo 3 > /tree/top.txt && ln -s top.txt /tree/link');
    assert.deepEqual(await viaOther.readdir('/tree'), ['a', 'link', 'top.txt']);
    const typed = await viaOwner.readdir('/tree', { withFileTypes: true });
    assert.deepEqual(typed.map((d) => [d.name, d.isDirectory(), d.isFile(), d.isSymbolicLink()]), [
      ['a', true, false, false], ['link', false, false, true], ['top.txt', false, true, false],
    ]);
    assert.deepEqual(await viaOther.readdir('/tree', { recursive: true }), ['a', 'a/b', 'a/b/two.md', 'a/one.md', 'link', 'top.txt']);
    assert.deepEqual(await viaOwner.readdir('/tree', { recursive: true, pattern: '*.md' }), ['a/b/two.md', 'a/one.md']);
    assert.deepEqual(await viaOwner.readdir('/tree', { pattern: '*.txt' }), ['top.txt']);
  });

  test('mkdir, exists, stat, rm with force and recursive', async () => {
    await viaOther.mkdir('/made/deep/er', { recursive: true });
    assert.deepEqual(await viaOwner.readdir('/made/deep'), ['er']);
    // Without recursive, one missing level is made (as fs.mkdir does) and no more.
    await viaOwner.mkdir('/made/single');
    assert.deepEqual(await viaOwner.readdir('/made'), ['deep', 'single']);
    assert.equal((await fsError(viaOwner.mkdir('/nothing/here'))).code, 'ENOENT');
    await viaOwner.mkdir('/made/mode', { recursive: true, mode: 0o700 });
    assert.equal(await sh('stat -c %a /made/mode'), '700\n');
    // exists and stat read a listing: a file or a directory with entries exists.
    assert.equal(await viaOther.exists('/work/hello.txt'), true);
    assert.equal(await viaOther.exists('/made'), true);
    assert.equal(await viaOther.exists('/no/such/thing'), false);
    assert.equal((await fsError(viaOther.rm('/made'))).code, 'ENOTEMPTY');
    await viaOther.rm('/made/deep', { recursive: true });
    await viaOwner.rm('/made/single');
    await viaOther.rm('/made/never-was', { force: true });
    assert.equal((await fsError(viaOther.rm('/made/never-was'))).code, 'ENOENT');
    await viaOwner.rm('/work/empty', { asRoot: true });
    assert.deepEqual(await viaOwner.readdir('/made'), ['mode']);
  });

  test('rename, copyFile (recursive, preserving attributes), chmod, chown', async () => {
    await viaOther.rename('/tree/top.txt', '/tree/moved.txt');
    assert.deepEqual(await viaOwner.readdir('/tree'), ['a', 'link', 'moved.txt']);
    await viaOwner.copyFile('/tree/moved.txt', '/tree/copy.txt');
    assert.equal(await viaOther.readFile('/tree/copy.txt', 'utf8'), '3\n');
    assert.equal((await fsError(viaOther.copyFile('/tree/a', '/copied'))).code, 'EISDIR');
    await sh('chmod 600 /tree/a/one.md && touch -d "2020-01-02 03:04:05" /tree/a/one.md');
    await viaOther.copyFile('/tree', '/copied', { recursive: true, preserveAttrs: true });
    assert.deepEqual(await viaOwner.readdir('/copied', { recursive: true }), ['a', 'a/b', 'a/b/two.md', 'a/one.md', 'copy.txt', 'link', 'moved.txt']);
    assert.equal(await sh('stat -c "%a %Y" /copied/a/one.md; readlink /copied/link'), '600 1577934245\ntop.txt\n');
    await viaOwner.chmod('/copied', 0o750, { recursive: true });
    assert.equal(await sh('stat -c %a /copied /copied/a/b/two.md'), '750\n750\n');
    await viaOther.chmod('/copied/copy.txt', 0o4711, { asRoot: true });
    assert.equal((await viaOwner.stat('/copied/copy.txt')).mode & 0o7777, 0o4711);
    await viaOther.chown('/copied', { uid: 'nobody', gid: 65534, recursive: true });
    assert.equal(await sh('stat -c %u:%g /copied /copied/a/b/two.md'), '65534:65534\n65534:65534\n');
    await viaOwner.chown('/copied/moved.txt', { uid: 1234 });
    assert.equal(await sh('stat -c %u:%g /copied/moved.txt'), '1234:65534\n');
    const noUser = await fsError(viaOwner.chown('/copied', { uid: 'no-such-user' }));
    assert.equal(noUser.code, 'EINVAL');
  });

  test('appendFile, readJSON and writeJSON', async () => {
    await viaOther.appendFile('/work/log.txt', 'one\n');
    await viaOwner.appendFile('/work/log.txt', Buffer.from('two\n'));
    assert.equal(await viaOther.readFile('/work/log.txt', 'utf8'), 'one\ntwo\n');
    await viaOther.writeJSON('/work/config.json', { a: 1, list: [true, null, 'x'] }, { spaces: 2 });
    assert.deepEqual(await viaOwner.readJSON('/work/config.json'), { a: 1, list: [true, null, 'x'] });
    assert.equal(await viaOwner.readFile('/work/config.json', 'utf8'), JSON.stringify({ a: 1, list: [true, null, 'x'] }, null, 2));
  });

  test('a file agent killed inside the sprite is started again on the next call', async () => {
    // On a terminal: a plain exec is the agent's own child, and killing the agent would cut it.
    const script = 'n=0; for p in /proc/[0-9]*; do grep -q "sprite-[a]gent" $p/cmdline 2>/dev/null && kill -9 ${p#/proc/} && n=$((n+1)); done; echo $n';
    const cmd = sprite.spawn('sh', ['-c', script], { tty: true });
    let killed = '';
    cmd.stdout.on('data', (chunk: Buffer) => (killed += chunk.toString()));
    assert.equal(await cmd.wait(), 0);
    assert.equal(killed, '1\r\n');
    assert.equal(await viaOther.readFile('/work/hello.txt', 'utf8'), 'héllo wörld\n');
  });

  test('errors: ENOENT, EISDIR, ENOTDIR, EEXIST as FilesystemError codes, with statuses', async () => {
    const missing = await fsError(viaOther.readFile('/no/such/file'));
    assert.equal(missing.code, 'ENOENT');
    assert.equal(missing.path, '/no/such/file');
    assert.match(missing.message, /no such file or directory/);
    assert.equal((await fsError(viaOwner.stat('/no/such/file'))).code, 'ENOENT');
    assert.equal((await fsError(viaOwner.readFile('/tree'))).code, 'EISDIR');
    assert.equal((await fsError(viaOther.readFile('/work/hello.txt/inner'))).code, 'ENOTDIR');
    assert.equal((await fsError(viaOther.mkdir('/work/hello.txt', { recursive: true }))).code, 'EEXIST');
    const raw = async (path: string): Promise<{ status: number; body: unknown }> => {
      const res = await fetch(`${other.url}/v1/sprites/fsa/fs/read?path=${encodeURIComponent(path)}`, { headers: { authorization: `Bearer ${other.token}` } });
      return { status: res.status, body: await res.json() };
    };
    assert.deepEqual(await raw('/nope'), { status: 404, body: { error: "ENOENT: no such file or directory, open '/nope'", code: 'ENOENT', path: '/nope' } });
    assert.equal((await raw('/tree')).status, 400);
    const bad = await fetch(`${owner.url}/v1/sprites/fsa/fs/read`, { headers: { authorization: `Bearer ${owner.token}` } });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: string }).error, 'ERR_BAD_REQUEST');
    const unknown = await fetch(`${owner.url}/v1/sprites/nosuch/fs/read?path=/x`, { headers: { authorization: `Bearer ${owner.token}` } });
    assert.equal(unknown.status, 404);
  });

  test('watch: events for changes made inside the sprite, through the peer that does not own it', async () => {
    await viaOwner.mkdir('/watched/sub', { recursive: true });
    const watcher = await viaOther.watch('/watched', { recursive: true });
    try {
      assert.deepEqual(await watcher.next(), { type: 'subscribed', paths: ['/watched'] });
      const seen: FilesystemWatchEvent[] = [];
      const want = [['create', '/watched/f'], ['write', '/watched/f'], ['chmod', '/watched/f'], ['rename', '/watched/f'], ['create', '/watched/g'], ['create', '/watched/sub/deep.txt'], ['remove', '/watched/g']];
      const done = (): boolean => want.every(([event, path]) => seen.some((e) => e.event === event && e.path === path));
      void (async () => {
        for (let event = await watcher.next(); event !== null; event = await watcher.next()) seen.push(event as FilesystemWatchEvent);
      })();
      await sh('cd /watched; echo one > f; sleep 0.3; echo two >> f; sleep 0.3; chmod 600 f; sleep 0.3; mv f g; sleep 0.3; echo x > sub/deep.txt; sleep 0.3; rm g');
      await eventually(() => done() || undefined, 15_000, `events ${JSON.stringify(want)}; seen ${JSON.stringify(seen)}`);
      const write = seen.find((e) => e.event === 'write' && e.path === '/watched/f')!;
      assert.equal(write.type, 'event');
      assert.equal(write.isDir, false);
      assert.ok(!Number.isNaN(Date.parse(write.timestamp!)));
      assert.ok(seen.every((e) => e.type === 'event' && e.path!.startsWith('/watched/')));
    } finally {
      watcher.close();
    }
    const missing = await viaOwner.watch('/no/such/dir');
    try {
      const answer = await missing.next();
      assert.equal(answer?.type, 'error');
      assert.match(answer!.message!, /ENOENT/);
    } finally {
      missing.close();
    }
  });
});
