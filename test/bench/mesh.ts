/**
 * Mesh benchmark, in sections that each start their own peers, print their own figures and stop
 * what they started:
 *   - wake: one request through the proxy to a sprite in warm sleep (frozen) and in cold sleep
 *     (stopped, disk unmounted), at its owner's proxy (one hop) and at another peer's (two hops),
 *     against the same request to the awake sprite. The sprite serves a static page with busybox
 *     httpd on :8080, so a cold wake is the platform's time plus httpd's start.
 *
 *   node test/bench/mesh.ts [--sections wake] [--wakes 10]
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { summary } from './stats.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1]! : fallback;
};
const WAKES = Number(option('wakes', '10'));

/** Each section: a title and a run that prints its figures (a markdown table). */
const SECTIONS: Record<string, { title: string; run: () => Promise<void> }> = {
  wake: { title: 'Wake from warm and cold sleep through the proxy', run: wakeSection },
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
  const url = await eventually(async () => (await peer.api('GET', `/v1/sprites/${name}/url`)).body?.http ?? undefined, 20_000, `the URL of ${name}`);
  return Number(new URL(url).port);
}

/** A sprite serving a static page with busybox httpd, the service that claims its HTTP port. */
async function httpdSprite(peer: PeerProcess, name: string): Promise<void> {
  const created = await peer.api('POST', '/v1/sprites', { name });
  if (created.status !== 201) throw new Error(`create ${name}: ${created.status} ${JSON.stringify(created.body)}`);
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
          await eventually(async () => (await owner.api('GET', `/v1/sprites/${name}`)).body.state === sleepState || undefined, 60_000, `${name} to sleep`);
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
