import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, chown, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually, removeDataDir, runCli, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { startBackend, type StoreBackend } from '../vm/storage/helpers.ts';

/** A small root: busybox for a shell, a file to find, one owned by uid 1000 and one setuid. */
async function makeRoot(dir: string, marker: string): Promise<void> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  await copyFile('/bin/busybox', join(dir, 'bin/busybox'));
  await chmod(join(dir, 'bin/busybox'), 0o755);
  for (const applet of ['sh', 'cat', 'stat', 'ls', 'echo']) await symlink('busybox', join(dir, 'bin', applet));
  await writeFile(join(dir, 'hello.txt'), `${marker}\n`);
  await mkdir(join(dir, 'home/user'), { recursive: true });
  await writeFile(join(dir, 'home/user/owned'), 'mine\n');
  await chown(join(dir, 'home/user/owned'), 1000, 1000);
  await writeFile(join(dir, 'setuid'), '');
  await chmod(join(dir, 'setuid'), 0o4755);
}

describe('base images on two peers sharing an object store', () => {
  let store: StoreBackend;
  let a: PeerProcess;
  let b: PeerProcess;
  let scratch: string;

  const exec = async (peer: PeerProcess, name: string, script: string): Promise<string> => {
    const result = await peer.cli(['exec', name, '--', 'sh', '-c', script]);
    assert.equal(result.code, 0, `exec on ${name}: ${result.stderr}`);
    return result.stdout;
  };

  before(async () => {
    store = await startBackend('file');
    scratch = await mkdtemp(join(tmpdir(), 'sprite-images-'));
    // A small cap, so the size limit can be shown with a small file.
    const args = ['--object-store', store.url, '--image-max-bytes', String(64 * 1024 ** 2)];
    a = await startPeer({ poolDepth: 1, args });
    b = await startPeer({ poolDepth: 1, args, join: a });
    await eventually(async () => (await a.api('GET', '/v1/peers')).body.peers.length === 2, 30_000, 'two peers');
  });
  after(async () => {
    for (const peer of [a, b]) {
      if (!peer) continue;
      await peer.stop();
      await removeDataDir(peer.dataDir);
    }
    await store?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test('an image built from a directory is listed on the other peer, and a sprite created from it there sees its files', async () => {
    const root = join(scratch, 'dir-root');
    await makeRoot(root, 'from a directory');
    const built = await a.cli(['image', 'build', 'dirimg', '--from-dir', root]);
    assert.equal(built.code, 0, built.stderr);
    assert.equal(built.stdout, 'dirimg\n');
    // Progress went to stderr, step by step.
    assert.match(built.stderr, /copying .*dir-root/);
    assert.match(built.stderr, /importing into the object store/);

    const listed = await eventually(async () => {
      const result = await b.cli(['image', 'list']);
      return result.stdout.includes('dirimg') ? result : undefined;
    }, 20_000, 'the image listed on B');
    assert.match(listed.stdout, /^NAME\s+SOURCE\s+SIZE\s+BUILT ON\s+CREATED\ndirimg\s+dir \S+dir-root\s+[\d.]+ MiB\s+\S+\s+\S+\n$/);

    const created = await b.cli(['create', 'fromdir', '--image', 'dirimg', '--json']);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(await exec(b, 'fromdir', 'cat /hello.txt'), 'from a directory\n');
    // Owners keep their ids inside the sprite (shifted into its range on the host), setuid survives.
    assert.equal(await exec(b, 'fromdir', 'stat -c %u:%g /home/user/owned /hello.txt'), '1000:1000\n0:0\n');
    assert.equal(await exec(b, 'fromdir', 'stat -c %a /setuid'), '4755\n');
    // What the image lacks comes from the platform's busybox in /.sprite/bin, after the image's own tools.
    assert.equal(await exec(b, 'fromdir', 'which httpd ls'), '/.sprite/bin/httpd\n/bin/ls\n');
    // The disk is the sprite's own: writes do not reach the image or other sprites.
    await exec(b, 'fromdir', 'echo changed > /hello.txt && sync');
    const second = await a.api('POST', '/v1/sprites', { name: 'fromdir2', image: 'dirimg' });
    assert.equal(second.status, 201, JSON.stringify(second.body));
    assert.equal(await exec(a, 'fromdir2', 'cat /hello.txt'), 'from a directory\n');
    // Without --image a sprite still gets the default image.
    const plain = await a.api('POST', '/v1/sprites', { name: 'plain' });
    assert.equal(plain.status, 201, JSON.stringify(plain.body));
    assert.equal(await exec(a, 'plain', 'test -e /hello.txt && echo yes || echo no'), 'no\n');
  });

  test('tarball and busybox images through the API', async () => {
    const root = join(scratch, 'tar-root');
    await makeRoot(root, 'from a tarball');
    const tarball = join(scratch, 'root.tar.gz');
    execFileSync('tar', ['-czf', tarball, '-C', root, '.']);
    const tar = await a.api('POST', '/v1/images', { name: 'tarimg', from: 'tar', path: tarball });
    assert.equal(tar.status, 201, JSON.stringify(tar.body));
    assert.deepEqual(Object.keys(tar.body).sort(), ['bytes', 'created', 'name', 'peer', 'source', 'volume']);
    assert.match(tar.body.volume, /^img-tarimg-[0-9a-f]{8}$/);
    assert.equal(tar.body.source, `tar ${tarball}`);

    const busybox = await b.api('POST', '/v1/images', { name: 'bb', from: 'busybox' });
    assert.equal(busybox.status, 201, JSON.stringify(busybox.body));

    const fromTar = await b.api('POST', '/v1/sprites', { name: 'fromtar', image: 'tarimg' });
    assert.equal(fromTar.status, 201, JSON.stringify(fromTar.body));
    assert.equal(await exec(b, 'fromtar', 'cat /hello.txt; stat -c %u /home/user/owned'), 'from a tarball\n1000\n');
    const fromBusybox = await a.api('POST', '/v1/sprites', { name: 'frombb', image: 'bb' });
    assert.equal(fromBusybox.status, 201, JSON.stringify(fromBusybox.body));
    assert.equal(await exec(a, 'frombb', 'cat /etc/passwd | head -1'), 'root:x:0:0:root:/root:/bin/sh\n');

    const one = await a.api('GET', '/v1/images/tarimg');
    assert.equal(one.status, 200);
    assert.equal(one.body.name, 'tarimg');
    await eventually(async () => (await a.api('GET', '/v1/images')).body.images.length === 3, 20_000, 'three images on A');
  });

  test('bad input answers with a clear error and status', async () => {
    const build = (body: unknown) => a.api('POST', '/v1/images', body);
    const expect = async (body: unknown, status: number, code: string, message?: RegExp): Promise<void> => {
      const answer = await build(body);
      assert.equal(answer.status, status, JSON.stringify(answer.body));
      assert.equal(answer.body.error, code);
      if (message) assert.match(answer.body.message, message);
    };
    await expect({ name: 'missing', from: 'dir', path: join(scratch, 'nope') }, 400, 'ERR_IMAGE_SOURCE', /nope is not a directory/);
    const garbage = join(scratch, 'garbage.tar');
    await writeFile(garbage, Buffer.alloc(4096, 7));
    await expect({ name: 'garbage', from: 'tar', path: garbage }, 400, 'ERR_IMAGE_SOURCE', /not a readable tarball/);
    await expect({ name: 'Bad_Name', from: 'busybox' }, 400, 'ERR_BAD_NAME');
    await expect({ name: 'dirimg', from: 'busybox' }, 409, 'ERR_IMAGE_EXISTS');
    await expect({ name: 'rel', from: 'dir', path: 'relative/dir' }, 400, 'ERR_BAD_REQUEST', /absolute/);
    await expect({ name: 'nopath', from: 'dir' }, 400, 'ERR_BAD_REQUEST', /path is required/);
    await expect({ name: 'x', from: 'floppy' }, 400, 'ERR_BAD_REQUEST', /from must be busybox, dir, tar or debian/);
    await expect({ name: 'x', from: 'busybox', extra: 1 }, 400, 'ERR_BAD_REQUEST', /extra is not a known field/);
    await expect({ name: 'x', from: 'busybox', suite: 'bookworm' }, 400, 'ERR_BAD_REQUEST', /only go with from=debian/);
    // Over the peer's cap (64 MiB here): refused before anything is copied.
    const big = join(scratch, 'big');
    await mkdir(big);
    execFileSync('truncate', ['-s', String(65 * 1024 ** 2), join(big, 'file')]);
    await expect({ name: 'big', from: 'dir', path: big }, 413, 'ERR_IMAGE_TOO_LARGE', /over the image limit/);
    // Debian needs debootstrap; with it installed the mirror on a closed loopback port fails fast (never the network).
    await expect({ name: 'deb', from: 'debian', mirror: 'http://127.0.0.1:9/debian' }, 400, 'ERR_IMAGE_SOURCE', /debootstrap/);

    const unknown = await b.api('POST', '/v1/sprites', { name: 'ghost', image: 'no-such-image' });
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal(unknown.body.error, 'ERR_IMAGE_NOT_FOUND');
    assert.equal((await b.api('GET', '/v1/sprites/ghost')).status, 404);
    const cli = await b.cli(['create', 'ghost', '--image', 'no-such-image']);
    assert.equal(cli.code, 1);
    assert.equal(cli.stderr, 'sprite: no image named no-such-image (see sprite image list)\n');
    const missingDir = await a.cli(['image', 'build', 'missing', '--from-dir', join(scratch, 'nope')]);
    assert.equal(missingDir.code, 1);
    assert.match(missingDir.stderr, /^sprite: \S+nope is not a directory on peer \S+\n$/);
    // The CLI streams a build: debootstrap's lines (when it is installed) on stderr, then one error line.
    const debian = await a.cli(['image', 'build', 'deb', '--debian', '--mirror', 'http://127.0.0.1:9/debian']);
    assert.equal(debian.code, 1);
    assert.match(debian.stderr, /\nsprite: [^\n]*debootstrap[^\n]*\n$|^sprite: [^\n]*debootstrap[^\n]*\n$/);
    assert.equal((await a.api('GET', '/v1/images/deb')).status, 404);
    const noSource = await a.cli(['image', 'build', 'x']);
    assert.equal(noSource.code, 2);
    assert.match(noSource.stderr, /needs exactly one of --from-dir/);
    assert.equal((await a.api('GET', '/v1/images/none')).body.error, 'ERR_IMAGE_NOT_FOUND');
  });

  test('only admin tokens build and delete images; any token lists them and creates from them', async () => {
    assert.equal((await a.api('POST', '/v1/orgs', { name: 'acme' })).status, 201);
    const issued = await a.api('POST', '/v1/tokens', { name: 'acme-dev', org: 'acme' });
    assert.equal(issued.status, 201);
    const user = (args: string[]) => runCli(args, { SPRITE_API: a.url, SPRITE_TOKEN: issued.body.token as string });
    const build = await user(['image', 'build', 'mine', '--busybox']);
    assert.equal(build.code, 1);
    assert.match(build.stderr, /^sprite: token acme-dev of org acme is not an admin token; POST \/v1\/images takes one\n$/);
    const removal = await user(['image', 'delete', 'bb']);
    assert.match(removal.stderr, /not an admin token/);
    assert.match((await user(['image', 'list'])).stdout, /^bb\s/m);
    const created = await user(['create', 'acme-sprite', '--image', 'bb', '--json']);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(JSON.parse(created.stdout).organization, 'acme');
  });

  test('deleting an image removes it everywhere; sprites made from it keep their disks', async () => {
    const deleted = await b.cli(['image', 'delete', 'dirimg']);
    assert.equal(deleted.code, 0, deleted.stderr);
    await eventually(async () => (await a.api('GET', '/v1/images/dirimg')).status === 404, 20_000, 'the image gone on A');
    assert.equal((await a.api('POST', '/v1/sprites', { name: 'late', image: 'dirimg' })).body.error, 'ERR_IMAGE_NOT_FOUND');
    const again = await b.cli(['image', 'delete', 'dirimg']);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, 'sprite: no image named dirimg\n');
    // The sprite from the deleted image still runs and restarts on its own disk.
    assert.equal((await b.api('POST', '/v1/sprites/fromdir/stop')).status, 200);
    assert.equal((await b.api('POST', '/v1/sprites/fromdir/start')).status, 200);
    assert.equal(await exec(b, 'fromdir', 'cat /hello.txt'), 'changed\n');
    // The name is free again, and a sprite from the new image gets the new image's files.
    const rebuilt = await b.api('POST', '/v1/images', { name: 'dirimg', from: 'busybox' });
    assert.equal(rebuilt.status, 201, JSON.stringify(rebuilt.body));
    await eventually(async () => (await a.api('GET', '/v1/images/dirimg')).status === 200, 20_000, 'the new image on A');
    const fresh = await a.api('POST', '/v1/sprites', { name: 'fresh', image: 'dirimg' });
    assert.equal(fresh.status, 201, JSON.stringify(fresh.body));
    assert.equal(await exec(a, 'fresh', 'test -e /hello.txt && echo old || echo new'), 'new\n');
  });
});

test('a peer that cannot build its Debian base image shows the progress, says why, and starts on busybox', async () => {
  // The mirror is a closed loopback port: debootstrap fails at once, never reaching the network.
  const peer = await startPeer({ poolDepth: 1, args: ['--image', 'debian', '--debian-mirror', 'http://127.0.0.1:9/debian'] });
  try {
    const output = peer.startup.join('\n');
    assert.match(output, /base image \[ +0%\] Downloading Release file/, 'debootstrap progress with its percentage');
    assert.match(output, /debian base image failed \(debootstrap bookworm from http:\/\/127\.0\.0\.1:9\/debian failed .*Failed getting release file/);
    const created = await peer.cli(['create', 'fallback']);
    assert.equal(created.code, 0, created.stderr);
    const shell = await peer.cli(['exec', 'fallback', '--', 'sh', '-c', 'readlink /bin/sh; test -e /etc/debian_version || echo no-debian']);
    assert.equal(shell.code, 0, shell.stderr);
    assert.equal(shell.stdout, 'busybox\nno-debian\n');
  } finally {
    await peer.stop();
    await removeDataDir(peer.dataDir);
  }
});
