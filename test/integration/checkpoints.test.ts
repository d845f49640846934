import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually, removeDataDir, spriteLeftovers, startPeer, type PeerProcess } from '../helpers/peer.ts';

describe('checkpoints and restore of a sprite disk', () => {
  let peer: PeerProcess;
  const run = (script: string) => peer.cli(['exec', 'keep', '--', 'sh', '-c', script]);
  const ids = async () => ((await peer.api('GET', '/v1/sprites/keep/checkpoints')).body as { id: string }[]).map((c) => c.id);
  /** Takes a checkpoint through the API's NDJSON stream and returns its id. */
  const checkpoint = async (comment: string): Promise<string> => {
    const made = await peer.cli(['checkpoint', 'create', 'keep', '-m', comment]);
    assert.equal(made.code, 0, made.stderr);
    return made.stdout.trim();
  };
  /** The five newest of `all`, sorted as `ls` lists them. */
  const newest = (all: string[]) => [...all].sort((a, b) => Number(b.slice(1)) - Number(a.slice(1))).slice(0, 5).sort();
  const mounted = async () => (await run('ls /.sprite/checkpoints')).stdout.split('\n').filter(Boolean).sort();
  before(async () => {
    peer = await startPeer({ poolDepth: 0 });
    assert.equal((await peer.api('POST', '/v1/sprites', { name: 'keep' })).status, 201);
  });
  after(async () => {
    await peer?.stop();
    if (peer) await removeDataDir(peer.dataDir);
  });

  test('write, checkpoint, overwrite, restore: the checkpointed bytes come back', async () => {
    assert.equal((await run('head -c 3000000 /dev/urandom > /root/data; sha256sum /root/data > /root/sum; sync')).code, 0);
    const sum = (await run('cat /root/sum')).stdout;
    const created = await peer.cli(['checkpoint', 'create', 'keep', '-m', 'before the mess', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const checkpoint = JSON.parse(created.stdout) as { id: string; comment: string };
    assert.match(checkpoint.id, /^v\d+$/);
    assert.equal(checkpoint.comment, 'before the mess');
    // The sprite kept running through the checkpoint.
    assert.equal((await run('echo still here')).stdout, 'still here\n');
    assert.equal((await run('head -c 1000 /dev/zero > /root/data; rm /root/sum; echo new > /root/after')).code, 0);

    const listed = await peer.cli(['checkpoint', 'list', 'keep']);
    assert.match(listed.stdout, new RegExp(`${checkpoint.id}\\s+.*before the mess`));
    const restored = await peer.cli(['restore', 'keep', checkpoint.id]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal((await peer.api('GET', '/v1/sprites/keep')).body.status, 'running');
    assert.equal((await run('sha256sum /root/data')).stdout, sum);
    assert.notEqual((await run('test -e /root/after; echo $?')).stdout, '0\n');
  });

  test('unknown checkpoints are 404; deleted checkpoints disappear', async () => {
    const missing = await peer.api('POST', '/v1/sprites/keep/checkpoints/v999/restore');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error, 'ERR_CHECKPOINT_NOT_FOUND');
    const made = await checkpoint('');
    assert.equal((await peer.api('GET', `/v1/sprites/keep/checkpoints/${made}`)).status, 200);
    assert.equal((await peer.cli(['checkpoint', 'delete', 'keep', made])).code, 0);
    assert.equal((await peer.api('GET', `/v1/sprites/keep/checkpoints/${made}`)).status, 404);
    const info = await peer.cli(['checkpoint', 'info', 'keep', made]);
    assert.equal(info.code, 1);
    assert.match(info.stderr, /no checkpoint/);
  });

  test('inside: sprite-env checkpoints create and list, and the newest five mounted read-only', async () => {
    assert.equal((await run('echo inside-1 > /root/marker; sync')).code, 0);
    const created = await run('sprite-env checkpoints create -m "from inside"');
    assert.equal(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    assert.match(id, /^v\d+$/);
    const viaApi = await peer.api('GET', `/v1/sprites/keep/checkpoints/${id}`);
    assert.equal(viaApi.status, 200);
    assert.equal(viaApi.body.comment, 'from inside');

    // Mounted at once, read-only, with the bytes of the moment.
    assert.equal((await run('echo changed > /root/marker')).code, 0);
    assert.equal((await run(`cat /.sprite/checkpoints/${id}/root/marker`)).stdout, 'inside-1\n');
    const write = await run(`echo x > /.sprite/checkpoints/${id}/root/new`);
    assert.notEqual(write.code, 0);
    assert.match(write.stderr, /read-only/i);
    assert.notEqual((await run(`rm /.sprite/checkpoints/${id}/root/marker`)).code, 0);

    // Checkpoints made through the API show up inside too, and only the newest five stay mounted.
    for (let i = 0; i < 5; i++) await checkpoint(`api ${i}`);
    const all = await ids();
    // Through the API the mounts follow a moment after the answer.
    const settled = (want: string[]) => eventually(async () => {
      const got = await mounted();
      return got.join() === want.join() ? got : undefined;
    }, 30_000, `mounted ${want.join(' ')}`);
    await settled(newest(all));
    assert.ok(!(await mounted()).includes(id), 'the inside checkpoint is the sixth newest now');

    // Deleting one of the five brings the next older one in.
    const doomed = newest(all)[2]!;
    assert.equal((await peer.cli(['checkpoint', 'delete', 'keep', doomed])).code, 0);
    const remaining = all.filter((c) => c !== doomed);
    await settled(newest(remaining));
    assert.ok((await mounted()).includes(id));

    const listed = await run('sprite-env checkpoints list');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`^${id}\t\\S+\t/\\.sprite/checkpoints/${id}\tfrom inside$`, 'm'));
    const json = JSON.parse((await run('sprite-env checkpoints list --json')).stdout) as { id: string; path: string | null }[];
    assert.deepEqual(json.map((c) => c.id), remaining);
    assert.equal(json.filter((c) => c.path !== null).length, 5);
  });

  test('inside: bad comments are refused and checkpoints are rate-limited', async () => {
    const long = await run('sprite-env checkpoints create -m "$(head -c 1025 /dev/zero | tr \'\\0\' a)"');
    assert.equal(long.code, 1);
    assert.match(long.stderr, /^sprite-env: comment is longer than 1024 characters\n$/);
    const control = await run('sprite-env checkpoints create -m "$(printf \'a\\nb\')"');
    assert.equal(control.code, 1);
    assert.match(control.stderr, /control characters/);
    const usage = await run('sprite-env checkpoints create --bogus');
    assert.equal(usage.code, 2);
    const before = (await ids()).length;
    // A burst of 10, then one a minute; this sprite used one above. Twelve in a row cannot all pass
    // unless they take two minutes.
    const burst = await run('for i in $(seq 12); do sprite-env checkpoints create -m "burst $i" >/dev/null 2>>/tmp/limited || echo refused; done; cat /tmp/limited');
    assert.match(burst.stdout, /refused/);
    assert.match(burst.stdout, /too many checkpoints/);
    const after = (await ids()).length;
    const refused = burst.stdout.split('\n').filter((line) => line === 'refused').length;
    assert.equal(after - before, 12 - refused);
  });

  test('mounts come back after restore and start, and stop and destroy leak no mount or loop device', async () => {
    const all = await ids();
    assert.equal((await peer.cli(['restore', 'keep', all[0]!])).code, 0);
    assert.deepEqual(await mounted(), newest(all));
    // The peer's own pieces (the storage daemon's FUSE mount, its egress bridge and table) stay while it runs.
    const leaks = () => spriteLeftovers(peer.dataDir);
    const loops = async () => (await leaks()).filter((line) => line.startsWith('loop:'));
    // The root disk and five checkpoints.
    assert.equal((await loops()).length, 6, (await loops()).join('\n'));

    // A process sitting in a checkpoint that gets deleted keeps its view, nobody else sees it, and
    // it does not keep the device past the sprite's stop.
    const busy = newest(all).at(-1)!;
    await peer.cli(['exec', 'keep', '--', 'sh', '-c', `cd /.sprite/checkpoints/${busy} && (sleep 600 >/dev/null 2>&1 &)`]);
    assert.equal((await peer.cli(['checkpoint', 'delete', 'keep', busy])).code, 0);
    const left = await ids();
    await eventually(async () => ((await mounted()).join() === newest(left).join() ? true : undefined), 30_000, 'the deleted checkpoint to go');
    assert.equal((await peer.cli(['stop', 'keep'])).code, 0);
    assert.deepEqual(await eventually(async () => ((await loops()).length === 0 ? [] : undefined), 20_000, 'loop devices to go'), []);
    assert.deepEqual(await leaks(), []);

    assert.equal((await peer.cli(['start', 'keep'])).code, 0);
    assert.deepEqual(await mounted(), newest(left));
    assert.equal((await peer.cli(['destroy', 'keep'])).code, 0);
    assert.deepEqual(await eventually(async () => ((await leaks()).length === 0 ? [] : undefined), 20_000, 'leftovers to go'), []);
  });
});
