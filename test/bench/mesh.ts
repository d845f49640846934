/**
 * Mesh benchmark, in sections that each start their own peers, print their own figures and stop
 * what they started:
 *   - wake: one request through the proxy to a sprite in warm sleep (frozen) and in cold sleep
 *     (stopped, disk unmounted), at its owner's proxy (one hop) and at another peer's (two hops),
 *     against the same request to the awake sprite. The sprite serves a static page with busybox
 *     httpd on :8080, so a cold wake is the platform's time plus httpd's start.
 *   - placement: a create sent to a peer without warm capacity against a local warm create (ratio),
 *     three peers on one S3-protocol store (fauxqs on loopback), as are the next two.
 *   - failover: kill -9 of a sprite's owner until the sprite answers through another peer.
 *   - drain: time per sprite to move a peer's sprites to the others.
 *
 *   node test/bench/mesh.ts [--sections wake,placement,failover,drain] [--wakes 10] [--creates 15]
 *     [--failovers 3] [--drained 5] [--down-after-ms 3000]
 */
import { asPeer } from '../helpers/links.ts';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { startBackend, type StoreBackend } from '../vm/storage/helpers.ts';
import { summary } from './stats.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1]! : fallback;
};
const WAKES = Number(option('wakes', '10'));
const CREATES = Number(option('creates', '15'));
const FAILOVERS = Number(option('failovers', '3'));
const DRAINED = Number(option('drained', '5'));
const DOWN_AFTER_MS = Number(option('down-after-ms', '3000'));
const MEMBERSHIP = ['--suspect-after-ms', String(Math.round(DOWN_AFTER_MS / 3)), '--down-after-ms', String(DOWN_AFTER_MS)];

/** Each section: a title and a run that prints its figures (a markdown table). */
const SECTIONS: Record<string, { title: string; run: () => Promise<void> }> = {
  wake: { title: 'Wake from warm and cold sleep through the proxy', run: wakeSection },
  placement: { title: 'Create through a peer without warm capacity', run: () => withMesh(placement) },
  failover: { title: 'Failover after kill -9 of the owner', run: () => withMesh(failover) },
  drain: { title: 'Drain', run: () => withMesh(drain) },
};

/** One GET on a fresh connection to a proxy listener; resolves with the status and the time it took. */
function timedGet(port: number, name: string, token: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', agent: false, headers: { host: `${name}.sprites.localhost`, authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
    }).on('error', reject);
  });
}

/** The port of a peer's plain-HTTP proxy listener. */
async function proxyPort(peer: PeerProcess, name: string): Promise<number> {
  const url = await eventually(async () => (await peer.api('GET', `/v1/sprites/${name}`)).body?.http_url ?? undefined, 20_000, `the URL of ${name}`);
  return Number(new URL(url).port);
}

/** A sprite serving a static page with busybox httpd, the service that claims its HTTP port. */
async function httpdSprite(peer: PeerProcess, name: string): Promise<void> {
  // Placed on this peer (its sleep settings are the case), not wherever placement would put it.
  await timed(peer, name, true);
  const page = await peer.cli(['exec', name, '--', 'sh', '-c', `mkdir -p /www && echo "hello from ${name}" > /www/index.html`]);
  if (page.code !== 0) throw new Error(page.stderr);
  const service = await peer.cli(['services', 'create', name, 'web', '--http-port', '8080', '--', 'httpd', '-f', '-p', '8080', '-h', '/www']);
  if (service.code !== 0) throw new Error(service.stderr);
}

async function wakeSection(): Promise<void> {
  const peers: PeerProcess[] = [];
  try {
    // Two owners in one mesh: one whose sprites only warm-sleep, one whose sprites go cold soon after.
    // Each is the other's "other peer" for the two-hop figures.
    const warmPeer = await startPeer({ poolDepth: 1, args: ['--warm-sleep-after', '1', '--cold-sleep-after', '3600'] });
    peers.push(warmPeer);
    const coldPeer = await startPeer({ poolDepth: 1, join: warmPeer, args: ['--warm-sleep-after', '1', '--cold-sleep-after', '2'] });
    peers.push(coldPeer);
    await httpdSprite(warmPeer, 'warm');
    await httpdSprite(coldPeer, 'cold');
    const rows: [string, number[]][] = [];
    for (const [name, owner, other, sleepState] of [['warm', warmPeer, coldPeer, 'warm'], ['cold', coldPeer, warmPeer, 'cold']] as const) {
      const ports = { 'one hop': await proxyPort(owner, name), 'two hops': await proxyPort(other, name) };
      await eventually(async () => (await timedGet(ports['two hops'], name, owner.token).catch(() => undefined))?.status === 200 || undefined, 30_000, `${name} through two hops`);
      for (const [hops, port] of Object.entries(ports)) {
        const awake: number[] = [];
        const woken: number[] = [];
        for (let i = 0; i < WAKES; i++) {
          // The awake figure: the same request a moment after the wake, with the sprite running.
          await eventually(async () => (await owner.api('GET', `/v1/sprites/${name}`)).body.status === sleepState || undefined, 60_000, `${name} to sleep`);
          const wake = await timedGet(port, name, owner.token);
          if (wake.status !== 200) throw new Error(`waking ${name} answered ${wake.status}`);
          woken.push(wake.ms);
          const again = await timedGet(port, name, owner.token);
          if (again.status !== 200) throw new Error(`awake ${name} answered ${again.status}`);
          awake.push(again.ms);
        }
        rows.push([`${name} sleep, ${hops}: wake`, woken], [`${name} sleep, ${hops}: awake (same request)`, awake]);
        process.stderr.write(`${name} ${hops}: wake ${JSON.stringify(summary(woken))}, awake ${JSON.stringify(summary(awake))}\n`);
      }
    }
    process.stdout.write(`\n| case | n | p50 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- |\n`);
    for (const [label, values] of rows) {
      const s = summary(values);
      process.stdout.write(`| ${label} | ${s.n} | ${s.p50} | ${s.p99} | ${s.max} |\n`);
    }
  } finally {
    for (const peer of peers.reverse()) await peer.stop();
    for (const peer of peers) await removeDataDir(peer.dataDir);
  }
}

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
    return (body.peers as { id: string; pool_ready: number }[]).some((p) => p.id === id && p.pool_ready >= 1);
  }, 30_000, 'warm capacity gossiped');
}

async function timed(peer: PeerProcess, name: string, placed = false): Promise<{ ms: number; owner: string }> {
  const started = performance.now();
  // A placed create is a peer's call over its link (the peer itself sends it, see asPeer): clients cannot place.
  const answer = placed
    ? await asPeer(peer, 'place', 'POST', '/v1/sprites', JSON.stringify({ name }))
    : await fetch(`${peer.url}/v1/sprites`, {
      method: 'POST', headers: { authorization: `Bearer ${peer.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name }),
    }).then(async (res) => ({ status: res.status, body: await res.text() }));
  const ms = performance.now() - started;
  const body = JSON.parse(answer.body) as { owner: string };
  if (answer.status !== 201) throw new Error(`create ${name}: ${answer.status} ${answer.body}`);
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
    local.push((await timed(worker, `local-${i}`, true)).ms);
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
    await timed(victim, name, true);
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
    await timed(drained, `drained-${i}`, true);
  }
  const started = performance.now();
  const result = await mesh.front.cli(['peer', 'drain', await peerId(drained)]);
  const ms = performance.now() - started;
  if (result.code !== 0) throw new Error(`drain: ${result.stderr}`);
  console.log(`drain: ${DRAINED} running sprites moved in ${Math.round(ms)} ms, ${Math.round(ms / DRAINED)} ms per sprite (flush, lease, adopt, start elsewhere)`);
  for (let i = 0; i < DRAINED; i++) await mesh.front.api('DELETE', `/v1/sprites/drained-${i}`);
}

/** Runs a section on three peers sharing one store: a front peer without a pool and two workers. */
async function withMesh(section: (mesh: Mesh) => Promise<void>): Promise<void> {
  process.env.AWS_ACCESS_KEY_ID ??= 'bench';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'bench';
  const store = await startBackend('s3');
  const front = await startPeer({ poolDepth: 0, args: ['--object-store', store.url, ...MEMBERSHIP] });
  const mesh: Mesh = { store, front, workers: [] };
  try {
    mesh.workers.push(await startWorker(mesh), await startWorker(mesh));
    await allAlive([front, ...mesh.workers]);
    await section(mesh);
  } finally {
    for (const peer of [front, ...mesh.workers]) {
      await peer.stop();
      await removeDataDir(peer.dataDir);
    }
    await store.stop();
  }
}

async function main(): Promise<void> {
  const chosen = option('sections', Object.keys(SECTIONS).join(',')).split(',');
  for (const key of chosen) {
    const section = SECTIONS[key];
    if (!section) throw new Error(`unknown section ${key}; sections: ${Object.keys(SECTIONS).join(', ')}`);
    process.stdout.write(`\n## ${section.title} (test/bench/mesh.ts, section ${key})\n`);
    await section.run();
  }
}

await main();
