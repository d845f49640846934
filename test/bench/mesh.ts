/**
 * Mesh benchmark, three peers on one S3-protocol store (fauxqs on loopback), each section
 * printing its figures:
 *   placement  create through a peer without warm capacity vs a local warm create (ratio)
 *   failover   kill -9 of the owner until the sprite answers through another peer
 *   drain      time per sprite to move a peer's sprites to the others
 *
 *   node test/bench/mesh.ts [--creates 15] [--failovers 3] [--drained 5] [--down-after-ms 3000]
 */
import { performance } from 'node:perf_hooks';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { startBackend, type StoreBackend } from '../vm/storage/helpers.ts';
import { summary } from './stats.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? Number(args[index + 1]) : fallback;
};
const CREATES = option('creates', 15);
const FAILOVERS = option('failovers', 3);
const DRAINED = option('drained', 5);
const DOWN_AFTER_MS = option('down-after-ms', 3000);
const MEMBERSHIP = ['--suspect-after-ms', String(Math.round(DOWN_AFTER_MS / 3)), '--down-after-ms', String(DOWN_AFTER_MS)];

/** A mesh of peers on one store; `front` has no warm pool, the others do. */
interface Mesh {
  store: StoreBackend;
  front: PeerProcess;
  workers: PeerProcess[];
}

async function peerId(peer: PeerProcess): Promise<string> {
  return (await peer.api('GET', '/v1/health')).body.peer as string;
}

async function startWorker(mesh: Pick<Mesh, 'store' | 'front'>, options: { dataDir?: string } = {}): Promise<PeerProcess> {
  return startPeer({ poolDepth: 1, join: mesh.front, dataDir: options.dataDir, args: ['--object-store', mesh.store.url, ...MEMBERSHIP] });
}

async function allAlive(peers: PeerProcess[]): Promise<void> {
  for (const peer of peers) {
    await eventually(async () => {
      const { body } = await peer.api('GET', '/v1/peers');
      return (body.peers as { state: string }[]).filter((p) => p.state === 'alive').length === peers.length;
    }, 60_000, 'every peer alive');
  }
}

/** Waits until `viewer` sees warm capacity on `peer` (gossiped with the heartbeat) and `peer`'s own pool is full. */
async function warm(viewer: PeerProcess, peer: PeerProcess): Promise<void> {
  const id = await peerId(peer);
  await eventually(async () => (await peer.api('GET', '/v1/pool')).body.ready >= 1, 120_000, 'a warm sprite');
  await eventually(async () => {
    const { body } = await viewer.api('GET', '/v1/peers');
    return (body.peers as { id: string; poolReady: number }[]).some((p) => p.id === id && p.poolReady >= 1);
  }, 30_000, 'warm capacity gossiped');
}

async function timed(peer: PeerProcess, name: string, headers: Record<string, string> = {}): Promise<{ ms: number; owner: string }> {
  const started = performance.now();
  const res = await fetch(`${peer.url}/v1/sprites`, {
    method: 'POST', headers: { authorization: `Bearer ${peer.token}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify({ name }),
  });
  const ms = performance.now() - started;
  const body = (await res.json()) as { owner: string };
  if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${JSON.stringify(body)}`);
  return { ms, owner: body.owner };
}

/** Local warm creates on a worker (placed there directly) against creates sent to the peer without a pool, alternating. */
async function placement(mesh: Mesh): Promise<void> {
  const worker = mesh.workers[0]!;
  const local: number[] = [];
  const forwarded: number[] = [];
  const frontId = await peerId(mesh.front);
  // Every create starts on a quiet mesh (pools full and gossiped); deletes wait for the end.
  const quiet = async (): Promise<void> => {
    for (const peer of mesh.workers) await warm(mesh.front, peer);
  };
  for (let i = 0; i < CREATES; i++) {
    await quiet();
    local.push((await timed(worker, `local-${i}`, { 'x-sprite-hop': 'place' })).ms);
    await quiet();
    const { ms, owner } = await timed(mesh.front, `placed-${i}`);
    if (owner === frontId) throw new Error('a create through the front peer ran there: no warm capacity was seen');
    forwarded.push(ms);
  }
  for (let i = 0; i < CREATES; i++) {
    await mesh.front.api('DELETE', `/v1/sprites/local-${i}`);
    await mesh.front.api('DELETE', `/v1/sprites/placed-${i}`);
  }
  const a = summary(local);
  const b = summary(forwarded);
  console.log(`placement: local warm create p50/p99 ${a.p50}/${a.p99} ms; through a peer without capacity ${b.p50}/${b.p99} ms; ratio p50 ${(b.p50 / a.p50).toFixed(2)}x (goal < 2x), n=${CREATES}`);
}

/** Kill -9 of a sprite's owner until a request through another peer is answered by the sprite. */
async function failover(mesh: Mesh): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < FAILOVERS; i++) {
    const victim = mesh.workers[0]!;
    await warm(victim, victim);
    const name = `failover-${i}`;
    await timed(victim, name, { 'x-sprite-hop': 'place' });
    const killed = performance.now();
    await victim.kill();
    await eventually(async () => (await mesh.front.api('GET', `/v1/sprites/${name}/services`)).status === 200, 120_000, 'the sprite answering elsewhere');
    times.push(performance.now() - killed);
    // The killed peer comes back (its restart sweeps what the kill left) and joins as the last worker.
    mesh.workers.shift();
    mesh.workers.push(await startWorker(mesh, { dataDir: victim.dataDir }));
    await allAlive([mesh.front, ...mesh.workers]);
    await mesh.front.api('DELETE', `/v1/sprites/${name}`);
  }
  const s = summary(times);
  console.log(`failover: owner killed -> sprite answering through another peer p50/max ${s.p50}/${s.max} ms with down-after ${DOWN_AFTER_MS} ms (detection is most of it), n=${FAILOVERS}`);
}

/** Moves DRAINED sprites off a worker with `sprite peer drain`. */
async function drain(mesh: Mesh): Promise<void> {
  const drained = mesh.workers[0]!;
  for (let i = 0; i < DRAINED; i++) {
    await warm(drained, drained);
    await timed(drained, `drained-${i}`, { 'x-sprite-hop': 'place' });
  }
  const started = performance.now();
  const result = await mesh.front.cli(['peer', 'drain', await peerId(drained)]);
  const ms = performance.now() - started;
  if (result.code !== 0) throw new Error(`drain: ${result.stderr}`);
  console.log(`drain: ${DRAINED} running sprites moved in ${Math.round(ms)} ms, ${Math.round(ms / DRAINED)} ms per sprite (flush, lease, adopt, start elsewhere)`);
  for (let i = 0; i < DRAINED; i++) await mesh.front.api('DELETE', `/v1/sprites/drained-${i}`);
}

async function main(): Promise<void> {
  process.env.AWS_ACCESS_KEY_ID ??= 'bench';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'bench';
  const store = await startBackend('s3');
  const front = await startPeer({ poolDepth: 0, args: ['--object-store', store.url, ...MEMBERSHIP] });
  const mesh: Mesh = { store, front, workers: [] };
  try {
    mesh.workers.push(await startWorker(mesh), await startWorker(mesh));
    await allAlive([front, ...mesh.workers]);
    await placement(mesh);
    await failover(mesh);
    await drain(mesh);
  } finally {
    for (const peer of [front, ...mesh.workers]) {
      await peer.stop();
      await removeDataDir(peer.dataDir);
    }
    await store.stop();
  }
}

await main();
