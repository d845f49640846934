/**
 * Create benchmark: warm-pool and cold creates at the API (sequential and 10 concurrent), the
 * cold/warm ratio, exec round trips, and the memory one idle pooled sprite adds.
 *
 *   node test/bench/create.ts [--sequential 50] [--concurrent 10] [--rounds 3]
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { option, summary } from './stats.ts';

const SEQUENTIAL = option('sequential', 50);
const CONCURRENT = option('concurrent', 10);
const ROUNDS = option('rounds', 3);
const POOLED_FOR_MEMORY = 10;

async function timedCreate(peer: PeerProcess, name: string): Promise<number> {
  const started = performance.now();
  const res = await peer.api('POST', '/v1/sprites', { name });
  const elapsed = performance.now() - started;
  if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  return elapsed;
}

async function destroyAll(peer: PeerProcess): Promise<void> {
  const { body } = await peer.api('GET', '/v1/sprites');
  await Promise.all(body.sprites.map((s: { name: string }) => peer.api('DELETE', `/v1/sprites/${s.name}`)));
}

async function poolReady(peer: PeerProcess, count: number): Promise<void> {
  await eventually(async () => (await peer.api('GET', '/v1/pool')).body.ready >= count, 120_000, `pool of ${count}`);
}

async function sequential(peer: PeerProcess, prefix: string, warm: boolean): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    if (warm) await poolReady(peer, 1);
    times.push(await timedCreate(peer, `${prefix}-${i}`));
    // Keep the machine at a steady number of sandboxes.
    if (i % 10 === 9) await destroyAll(peer);
  }
  await destroyAll(peer);
  return times;
}

async function concurrent(peer: PeerProcess, prefix: string, warm: boolean): Promise<number[]> {
  const times: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    if (warm) await poolReady(peer, CONCURRENT);
    const batch = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => timedCreate(peer, `${prefix}-${round}-${i}`)));
    times.push(...batch);
    await destroyAll(peer);
  }
  return times;
}

async function execRoundTrip(peer: PeerProcess, name: string, count: number): Promise<{ api: number[]; cli: number[] }> {
  const api: number[] = [];
  const cli: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`${peer.url.replace('http', 'ws')}/v1/sprites/${name}/exec?cmd=true`, { headers: { authorization: `Bearer ${peer.token}` } });
      ws.on('message', (data: Buffer) => {
        if (data[0] === 3) resolve();
      });
      ws.on('error', reject);
    });
    api.push(performance.now() - started);
    const cliStarted = performance.now();
    const result = await peer.cli(['exec', name, '--', 'true']);
    if (result.code !== 0) throw new Error(`sprite exec: ${result.stderr}`);
    cli.push(performance.now() - cliStarted);
  }
  return { api, cli };
}

async function memAvailableKiB(): Promise<number> {
  const info = await readFile('/proc/meminfo', 'utf8');
  return Number(/MemAvailable:\s+(\d+)/.exec(info)![1]);
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

async function pssOfSandboxesKiB(dataDir: string): Promise<{ total: number; processes: number }> {
  const { execFileSync } = await import('node:child_process');
  // Every process whose command line names this data dir's sandboxes (setpriv/nsenter/unshare,
  // sprite-init) plus the waiting `runc init` of each created container.
  const lines = execFileSync('ps', ['-eo', 'pid=,args=']).toString().split('\n');
  const pids = lines.filter((line) => (line.includes(dataDir) && /init\.json|unshare/.test(line)) || /runc init/.test(line)).map((line) => Number(line.trim().split(/\s+/)[0]));
  let total = 0;
  for (const pid of pids) {
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
    total += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
  }
  return { total, processes: pids.length };
}

async function main(): Promise<void> {
  const results: Record<string, unknown> = {};
  console.log(`create benchmark: ${SEQUENTIAL} sequential, ${CONCURRENT} concurrent x ${ROUNDS} rounds`);

  const warmPeer = await startPeer({ poolDepth: CONCURRENT });
  try {
    const warmSeq = await sequential(warmPeer, 'warm', true);
    const warmConc = await concurrent(warmPeer, 'warmc', true);
    await poolReady(warmPeer, 1);
    await warmPeer.api('POST', '/v1/sprites', { name: 'execbench' });
    const exec = await execRoundTrip(warmPeer, 'execbench', 20);
    results.warmSequential = summary(warmSeq);
    results.warmConcurrent = summary(warmConc);
    results.execApi = summary(exec.api);
    results.execCli = summary(exec.cli);
  } finally {
    await warmPeer.stop();
    await removeDataDir(warmPeer.dataDir);
  }

  const coldPeer = await startPeer({ poolDepth: 0, poolFallback: 'cold' });
  try {
    results.coldSequential = summary(await sequential(coldPeer, 'cold', false));
    results.coldConcurrent = summary(await concurrent(coldPeer, 'coldc', false));
  } finally {
    await coldPeer.stop();
    await removeDataDir(coldPeer.dataDir);
  }

  // Memory: the machine's available memory before a peer with POOLED_FOR_MEMORY warm sprites and
  // after, less the peer process itself, per sprite; and the PSS of the sandboxes' processes.
  const before = await memAvailableKiB();
  const memPeer = await startPeer({ poolDepth: POOLED_FOR_MEMORY });
  try {
    await poolReady(memPeer, POOLED_FOR_MEMORY);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const after = await memAvailableKiB();
    const peerRss = await rssKiB(memPeer.process.pid!);
    const pss = await pssOfSandboxesKiB(memPeer.dataDir);
    results.memoryPerPooledSprite = {
      machineMiB: Math.round(((before - after - peerRss) / POOLED_FOR_MEMORY / 1024) * 10) / 10,
      processPssMiB: Math.round((pss.total / POOLED_FOR_MEMORY / 1024) * 10) / 10,
      processesPerSprite: Math.round((pss.processes / POOLED_FOR_MEMORY) * 10) / 10,
    };
  } finally {
    await memPeer.stop();
    await removeDataDir(memPeer.dataDir);
  }

  const warm = results.warmSequential as { p50: number };
  const cold = results.coldSequential as { p50: number };
  results.coldOverWarmP50 = Math.round((cold.p50 / warm.p50) * 10) / 10;
  console.log(JSON.stringify(results, null, 2));
  console.log('\n| measure | n | p50 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- |');
  for (const key of ['warmSequential', 'warmConcurrent', 'coldSequential', 'coldConcurrent', 'execApi', 'execCli']) {
    const s = results[key] as { n: number; p50: number; p99: number; max: number };
    console.log(`| ${key} | ${s.n} | ${s.p50} | ${s.p99} | ${s.max} |`);
  }
  console.log(`\ncold/warm p50 ratio: ${results.coldOverWarmP50}`);
  console.log(`memory per idle pooled sprite: ${JSON.stringify(results.memoryPerPooledSprite)}`);
}

await main();
