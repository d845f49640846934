/**
 * API benchmark, driven by Sprites' own SDK (`@fly/sprites`) against real peers on loopback:
 *  - `sprite.exec('true')` round trip, on the owner peer and through a second peer;
 *  - `fs.writeFile` + `fs.readFile` of 100 MiB against `sprite exec cat` piping the same bytes;
 *  - `listSprites` p50 with 1,000 sprites in the mesh (created, then stopped: records and disks, no sandboxes).
 *
 *   node test/bench/api.ts [--exec 50] [--mib 100] [--sprites 1000] [--lists 50]
 */
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { SpritesClient, type Sprite } from '@fly/sprites';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { option, summary } from './stats.ts';

const EXECS = option('exec', 50);
const MIB = option('mib', 100);
const SPRITES = option('sprites', 1000);
const LISTS = option('lists', 50);

async function time(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

/** exec('true') round trips, alternating the two clients so both see the same machine load. */
async function execRoundTrips(direct: Sprite, viaOther: Sprite): Promise<{ direct: number[]; hop: number[] }> {
  const out = { direct: [] as number[], hop: [] as number[] };
  for (let i = 0; i < 5; i++) await direct.exec('true'); // warm both paths
  for (let i = 0; i < 5; i++) await viaOther.exec('true');
  for (let i = 0; i < EXECS; i++) {
    out.direct.push(await time(() => direct.exec('true')));
    out.hop.push(await time(() => viaOther.exec('true')));
  }
  return out;
}

/** MiB/s of the filesystem API (write then read back) and of `exec cat` both ways, same bytes. */
async function fileThroughput(sprite: Sprite): Promise<Record<string, number>> {
  const data = randomBytes(MIB * 1024 * 1024);
  const digest = createHash('sha256').update(data).digest('hex');
  const fs = sprite.filesystem('/');
  const rate = (ms: number): number => Math.round((MIB / (ms / 1000)) * 10) / 10;

  const fsWrite = await time(() => fs.writeFile('/tmp/bench.bin', data));
  let back: Buffer | string = '';
  const fsRead = await time(async () => {
    back = await fs.readFile('/tmp/bench.bin');
  });
  if (createHash('sha256').update(back).digest('hex') !== digest) throw new Error('fs read returned other bytes');

  const catWrite = await time(async () => {
    const cmd = sprite.spawn('sh', ['-c', 'cat > /tmp/bench-cat.bin']);
    // stdin is written once the WebSocket is open; the SDK throws on earlier writes.
    await new Promise<void>((resolve, reject) => cmd.once('spawn', resolve).once('error', reject));
    // As a piped file would arrive: 1 MiB writes (one WebSocket message each).
    for (let at = 0; at < data.length; at += 1024 * 1024) cmd.stdin.write(data.subarray(at, at + 1024 * 1024));
    cmd.stdin.end();
    if ((await cmd.wait()) !== 0) throw new Error('cat > failed');
  });
  let catBytes = 0;
  const hash = createHash('sha256');
  const catRead = await time(async () => {
    const cmd = sprite.spawn('cat', ['/tmp/bench-cat.bin']);
    cmd.stdout.on('data', (chunk: Buffer) => {
      catBytes += chunk.length;
      hash.update(chunk);
    });
    await cmd.wait();
  });
  if (catBytes !== data.length || hash.digest('hex') !== digest) throw new Error('exec cat returned other bytes');
  await sprite.exec('rm -f /tmp/bench.bin /tmp/bench-cat.bin');
  return {
    fsWriteMiBs: rate(fsWrite), fsReadMiBs: rate(fsRead), catWriteMiBs: rate(catWrite), catReadMiBs: rate(catRead),
    fsOverCat: Math.round(((catWrite + catRead) / (fsWrite + fsRead)) * 100) / 100,
  };
}

/** Creates `count` sprites, stopping each once created, a few at a time. */
async function populate(peer: PeerProcess, count: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const name = `list-${String(next++).padStart(4, '0')}`;
      const created = await peer.api('POST', '/v1/sprites', { name });
      if (created.status !== 201) throw new Error(`create ${name}: ${created.status} ${JSON.stringify(created.body)}`);
      const stopped = await peer.api('POST', `/v1/sprites/${name}/stop`);
      if (stopped.status !== 200) throw new Error(`stop ${name}: ${stopped.status} ${JSON.stringify(stopped.body)}`);
    }
  };
  await Promise.all([worker(), worker(), worker()]);
}

async function main(): Promise<void> {
  console.log(`api benchmark: ${EXECS} exec round trips per path, ${MIB} MiB files, ${SPRITES} sprites listed ${LISTS} times`);
  const a = await startPeer({ poolDepth: 2 });
  const b = await startPeer({ poolDepth: 1, join: a });
  const results: Record<string, unknown> = {};
  try {
    await eventually(async () => ((await a.api('GET', '/v1/peers')).body.peers?.length ?? 0) >= 2, 30_000, 'two peers');
    const onA = new SpritesClient(a.token, { baseURL: a.url });
    const onB = new SpritesClient(b.token, { baseURL: b.url });
    await onA.createSprite('bench');
    const exec = await execRoundTrips(onA.sprite('bench'), onB.sprite('bench'));
    results.execDirect = summary(exec.direct);
    results.execThroughOtherPeer = summary(exec.hop);
    results.execHopOverDirectP50 = Math.round(((results.execThroughOtherPeer as { p50: number }).p50 / (results.execDirect as { p50: number }).p50) * 100) / 100;
    console.log('exec', JSON.stringify({ direct: results.execDirect, hop: results.execThroughOtherPeer, ratio: results.execHopOverDirectP50 }));

    results.files = await fileThroughput(onA.sprite('bench'));
    console.log('files', JSON.stringify(results.files));
    await onA.deleteSprite('bench');

    const populated = await time(() => populate(a, SPRITES));
    console.log(`created and stopped ${SPRITES} sprites in ${Math.round(populated / 1000)} s`);
    const lists = { a: [] as number[], b: [] as number[] };
    for (let i = 0; i < LISTS; i++) {
      lists.a.push(await time(async () => {
        const page = await onA.listSprites();
        if (page.sprites.length === 0) throw new Error('empty list');
      }));
      lists.b.push(await time(() => onB.listSprites()));
    }
    const all = await onB.listAllSprites('list-');
    if (all.length !== SPRITES) throw new Error(`listAllSprites saw ${all.length} of ${SPRITES}`);
    results.listOwnerPeer = summary(lists.a);
    results.listOtherPeer = summary(lists.b);
    results.listAllSpritesMs = Math.round(await time(() => onB.listAllSprites('list-')));
  } finally {
    await b.stop();
    await a.stop();
    await removeDataDir(b.dataDir);
    await removeDataDir(a.dataDir);
  }
  console.log(JSON.stringify(results, null, 2));
}

await main();
