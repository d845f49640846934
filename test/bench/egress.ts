/**
 * Egress benchmark: HTTP download throughput from the test internet (test/helpers/internet.ts)
 * inside a sprite vs in the host's namespace, and warm create p50 with egress on vs off.
 * The sprite side runs with `--egress-rate 0` (no tc limit), so the figure is the plumbing's
 * (veth, nftables, masquerade), not the default limit's.
 *
 *   node test/bench/egress.ts [--mib 512] [--runs 3] [--creates 60]
 */
import { execFileSync } from 'node:child_process';
import { get } from 'node:http';
import { performance } from 'node:perf_hooks';
import { startInternet, type Internet } from '../helpers/internet.ts';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { SPRITE_NODE } from '../helpers/probe.ts';
import { option, percentile, summary } from './stats.ts';

const MIB = option('mib', 512);
const RUNS = option('runs', 3);
const CREATES = option('creates', 60);

/** Downloads a URL, discarding the body; prints `<bytes> <ms>` (runs inside a sprite too). */
const DOWNLOAD = `
const started = performance.now();
let bytes = 0;
require('node:http').get(process.argv[1], (res) => {
  res.on('data', (chunk) => { bytes += chunk.length; });
  res.on('end', () => console.log(bytes + ' ' + (performance.now() - started)));
});
`;

function mibPerSecond(output: string): number {
  const [bytes, ms] = output.trim().split(' ').map(Number);
  if (bytes !== MIB * 1024 ** 2) throw new Error(`short download: ${output}`);
  return bytes! / 1024 ** 2 / (ms! / 1000);
}

async function hostDownload(url: string): Promise<number> {
  const started = performance.now();
  let bytes = 0;
  await new Promise<void>((resolve, reject) => {
    get(url, (res) => {
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', resolve);
      res.on('error', reject);
    }).on('error', reject);
  });
  return mibPerSecond(`${bytes} ${performance.now() - started}`);
}

async function spriteDownload(peer: PeerProcess, name: string, url: string): Promise<number> {
  const result = await peer.cli(['exec', name, '--', ...SPRITE_NODE, '-e', DOWNLOAD, url]);
  if (result.code !== 0) throw new Error(result.stderr);
  return mibPerSecond(result.stdout);
}

/** One warm create on `peer` (both peers' pools full first, so neither refills beside it), timed, then destroyed. */
async function warmCreate(peer: PeerProcess, both: PeerProcess[], name: string): Promise<number> {
  for (const one of both) await eventually(async () => (await one.api('GET', '/v1/pool')).body.ready >= 1, 120_000, 'a warm sprite');
  const started = performance.now();
  const res = await peer.api('POST', '/v1/sprites', { name });
  const elapsed = performance.now() - started;
  if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
  await peer.api('DELETE', `/v1/sprites/${name}`);
  return elapsed;
}

/**
 * Times DNS queries from inside a sprite with raw UDP (no client-side cache): to its gateway (the
 * peer's policy resolver, answering from its cache after the first query) and straight to the
 * test internet's DNS server through the masquerade. Prints JSON `{gateway, direct}` in ms, sorted.
 */
const DNS_TIMES = `
const dgram = require('node:dgram');
const [server, count] = [process.argv[1], Number(process.argv[2])];
const gateway = require('node:fs').readFileSync('/etc/resolv.conf', 'utf8').match(/nameserver (\\S+)/)[1];
const name = Buffer.concat([Buffer.from([5]), Buffer.from('bench'), Buffer.from([4]), Buffer.from('test'), Buffer.from([0])]);
const socket = dgram.createSocket('udp4');
let pending;
socket.on('message', () => pending());
const ask = (host, id) => new Promise((resolve, reject) => {
  const query = Buffer.concat([Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), name, Buffer.from([0, 1, 0, 1])]);
  const timer = setTimeout(() => reject(new Error('timeout')), 2000);
  const start = process.hrtime.bigint();
  pending = () => { clearTimeout(timer); resolve(Number(process.hrtime.bigint() - start) / 1e6); };
  socket.send(query, 53, host);
});
(async () => {
  const times = { gateway: [], direct: [] };
  for (let i = 0; i < 200; i++) { await ask(gateway, i); await ask(server, i); }
  for (let i = 0; i < count; i++) { times.gateway.push(await ask(gateway, i)); times.direct.push(await ask(server, i)); }
  for (const list of Object.values(times)) list.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify(times));
  socket.close();
})();
`;

/** The policy resolver's added latency on a cached answer, seen from inside a sprite: p50 / p99 (ms) through it and direct. */
async function resolverLatency(peer: PeerProcess, name: string, internet: Internet): Promise<Record<'gateway' | 'direct', { p50: number; p99: number }>> {
  const result = await peer.cli(['exec', name, '--', ...SPRITE_NODE, '-e', DNS_TIMES, internet.dnsAddress, String(option('dns-queries', 2000))]);
  if (result.code !== 0) throw new Error(result.stderr);
  const times = JSON.parse(result.stdout) as { gateway: number[]; direct: number[] };
  const ms = (sorted: number[], p: number): number => Math.round(percentile(sorted, p) * 1000) / 1000;
  return { gateway: { p50: ms(times.gateway, 50), p99: ms(times.gateway, 99) }, direct: { p50: ms(times.direct, 50), p99: ms(times.direct, 99) } };
}

async function main(): Promise<void> {
  const internet = await startInternet();
  const peers: PeerProcess[] = [];
  try {
    const url = `http://${internet.httpAddress}/bytes?n=${MIB * 1024 ** 2}`;
    const egressArgs = ['--egress-uplink', internet.uplink, '--egress-dns', internet.dnsAddress, '--egress-rate', '0'];
    const on = await startPeer({ poolDepth: 1, args: egressArgs });
    peers.push(on);
    const off = await startPeer({ poolDepth: 1, args: ['--egress', 'off'] });
    peers.push(off);
    if ((await on.api('POST', '/v1/sprites', { name: 'bench-net' })).status !== 201) throw new Error('create bench-net');

    const host: number[] = [];
    const sprite: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      host.push(await hostDownload(url));
      sprite.push(await spriteDownload(on, 'bench-net', url));
    }
    const [hostMedian, spriteMedian] = [percentile(host, 50), percentile(sprite, 50)];
    console.log(`download ${MIB} MiB, ${RUNS} runs, medians: host ${hostMedian.toFixed(0)} MiB/s, sprite ${spriteMedian.toFixed(0)} MiB/s (no rate limit): ${(spriteMedian / hostMedian).toFixed(2)}x`);
    console.log(`  host runs ${host.map((x) => x.toFixed(0)).join(', ')}; sprite runs ${sprite.map((x) => x.toFixed(0)).join(', ')}`);
    const dns = await resolverLatency(on, 'bench-net', internet);
    console.log(`DNS from inside a sprite: through the policy resolver (cached) p50 ${dns.gateway.p50} ms, p99 ${dns.gateway.p99} ms; straight to the upstream p50 ${dns.direct.p50} ms, p99 ${dns.direct.p99} ms: added p50 ${(dns.gateway.p50 - dns.direct.p50).toFixed(3)} ms`);
    await on.api('DELETE', '/v1/sprites/bench-net');

    // Alternating one create each, so load from the machine's other work falls on both alike.
    const createOn: number[] = [];
    const createOff: number[] = [];
    for (let i = 0; i < CREATES; i++) {
      createOn.push(await warmCreate(on, [on, off], `on-${i}`));
      createOff.push(await warmCreate(off, [on, off], `off-${i}`));
    }
    const [sOn, sOff] = [summary(createOn), summary(createOff)];
    console.log(`warm create, egress on: p50 ${sOn.p50} ms, p99 ${sOn.p99} ms (n = ${sOn.n}); off: p50 ${sOff.p50} ms, p99 ${sOff.p99} ms: on/off ${(sOn.p50 / sOff.p50).toFixed(2)}x`);
    console.log(`machine: ${execFileSync('nproc').toString().trim()} cores, ${new Date().toISOString()}`);
  } finally {
    for (const peer of peers) {
      await peer.stop();
      await removeDataDir(peer.dataDir);
    }
    await internet.close();
  }
}

await main();
