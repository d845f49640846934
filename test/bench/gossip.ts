/**
 * Gossip benchmark: N gossip-only peer processes (N = 3, 10, 30 by default) on this machine.
 * Reports, per N: time from a write on one peer to its visibility on all others (p50/p99, lost),
 * loopback bytes per second per peer idle and at 100 writes/s, time for a frozen (SIGSTOP) peer
 * to converge after it thaws with 100 writes missed, and sync catch-up speed of a new peer.
 *
 *   node test/bench/gossip.ts [--sizes 3,10,30] [--writes 20]
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { summary } from './stats.ts';

const AGENT = new URL('./gossip-agent.ts', import.meta.url).pathname;

// Run in a network namespace of our own, so its loopback counters count only this benchmark's bytes.
if (process.env.GOSSIP_BENCH_NETNS !== '1') {
  const script = new URL(import.meta.url).pathname;
  const result = spawnSync('unshare', ['--net', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, ...process.execArgv, script, ...process.argv.slice(2)], {
    stdio: 'inherit', env: { ...process.env, GOSSIP_BENCH_NETNS: '1' },
  });
  process.exit(result.status ?? 1);
}
const args = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : fallback;
};
const SIZES = flag('sizes', '3,10,30').split(',').map(Number);
const WRITES = Number(flag('writes', '20'));

interface Agent {
  child: ChildProcess;
  id: string;
  addr: string;
  swarmKey: string;
  messages: ((message: any) => void)[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.timeOrigin + performance.now();

function startAgent(swarmKey: string, bootstrap: string[]): Promise<Agent> {
  const child = fork(AGENT, [swarmKey, ...bootstrap], { execArgv: ['--disable-warning=ExperimentalWarning'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const agent = { child, id: '', addr: '', swarmKey: '', messages: [] as ((m: any) => void)[] };
  child.on('message', (message) => {
    for (const listener of agent.messages) listener(message);
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`agent exited ${code}`)));
    agent.messages.push((m) => {
      if (m.ready) {
        Object.assign(agent, { id: m.id, addr: m.addr, swarmKey: m.swarmKey });
        resolve(agent);
      }
    });
  });
}

function ask<T>(agent: Agent, message: object, answer: (m: any) => T | undefined): Promise<T> {
  return new Promise((resolve) => {
    const listener = (m: any): void => {
      const value = answer(m);
      if (value !== undefined) {
        agent.messages.splice(agent.messages.indexOf(listener), 1);
        resolve(value);
      }
    };
    agent.messages.push(listener);
    agent.child.send(message);
  });
}

async function loopbackBytes(): Promise<number> {
  const dev = await readFile('/proc/net/dev', 'utf8');
  const line = dev.split('\n').find((l) => l.trim().startsWith('lo:'))!;
  return Number(line.split(':')[1]!.trim().split(/\s+/)[0]);
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = now();
  while (!(await check())) {
    if (now() - started > timeoutMs) throw new Error('timed out');
    await sleep(20);
  }
  return now() - started;
}

async function bench(n: number): Promise<Record<string, unknown>> {
  const first = await startAgent('-', []);
  const agents = [first, ...(await Promise.all(Array.from({ length: n - 1 }, () => startAgent(first.swarmKey, [first.addr]))))];
  try {
    const joinMs = await waitUntil(async () => (await Promise.all(agents.map((a) => ask(a, { members: true }, (m) => m.members as number | undefined)))).every((c) => c === n), 60_000);
    await sleep(3000);

    // Visibility: one write at a time from a random peer; latency is the slowest peer's.
    const latencies: number[] = [];
    let lost = 0;
    for (let i = 0; i < WRITES; i++) {
      const writer = agents[Math.floor(Math.random() * n)]!;
      const name = `vis-${n}-${i}`;
      const seen = new Map<string, number>();
      const listeners = agents.filter((a) => a !== writer).map((a) => {
        const listener = (m: any): void => {
          if (m.seen === name) seen.set(a.id, m.at);
        };
        a.messages.push(listener);
        return { a, listener };
      });
      const wroteAt = await ask(writer, { write: name }, (m) => (m.wrote === name ? (m.at as number) : undefined));
      const deadline = now() + 5000;
      while (seen.size < n - 1 && now() < deadline) await sleep(5);
      for (const { a, listener } of listeners) a.messages.splice(a.messages.indexOf(listener), 1);
      if (seen.size < n - 1) lost += 1;
      else latencies.push(Math.max(...seen.values()) - wroteAt);
      await sleep(200);
    }

    const idleStart = await loopbackBytes();
    await sleep(5000);
    const idleBytesPerPeer = (await loopbackBytes() - idleStart) / 5 / n;

    const busyStart = await loopbackBytes();
    await ask(agents[0]!, { burst: { prefix: `busy-${n}`, count: 500, perSecond: 100 } }, (m) => m.burstDone);
    const busyBytesPerPeer = (await loopbackBytes() - busyStart) / 5 / n;

    // Partition: freeze one peer, write 100 rows elsewhere, thaw, time until it has them all.
    const frozen = agents[n - 1]!;
    frozen.child.kill('SIGSTOP');
    await ask(agents[0]!, { burst: { prefix: `heal-${n}`, count: 100, perSecond: 200 } }, (m) => m.burstDone);
    await sleep(1000);
    frozen.child.kill('SIGCONT');
    const healMs = await waitUntil(async () => (await ask(frozen, { count: `heal-${n}` }, (m) => (m.count === `heal-${n}` ? (m.n as number) : undefined))) === 100, 60_000);

    // Catch-up: a new peer pulls every row written so far.
    const total = await ask(agents[0]!, { count: '' }, (m) => (m.count === '' ? (m.n as number) : undefined));
    const late = await startAgent(first.swarmKey, [first.addr]);
    agents.push(late);
    const catchUpMs = await waitUntil(async () => (await ask(late, { count: '' }, (m) => (m.count === '' ? (m.n as number) : undefined))) >= total, 60_000);

    return {
      n, joinMs: Math.round(joinMs), visibility: summary(latencies), lost,
      idleBytesPerSecPerPeer: Math.round(idleBytesPerPeer), busyBytesPerSecPerPeer: Math.round(busyBytesPerPeer),
      healMs: Math.round(healMs), catchUpRowsPerSec: Math.round(total / (catchUpMs / 1000)), catchUpRows: total,
    };
  } finally {
    for (const agent of agents) {
      agent.child.kill('SIGCONT');
      agent.child.send({ stop: true });
    }
    await Promise.all(agents.map((a) => new Promise((resolve) => (a.child.exitCode !== null ? resolve(null) : a.child.once('exit', resolve)))));
  }
}

const results = [];
for (const n of SIZES) {
  const result = await bench(n);
  console.log(JSON.stringify(result));
  results.push(result);
}
console.log('\n| N | join ms | visible on all p50 / p99 ms | lost | idle B/s/peer | 100 writes/s B/s/peer | heal ms | catch-up rows/s |\n| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results as any[]) {
  console.log(`| ${r.n} | ${r.joinMs} | ${r.visibility.p50} / ${r.visibility.p99} | ${r.lost} | ${r.idleBytesPerSecPerPeer} | ${r.busyBytesPerSecPerPeer} | ${r.healMs} | ${r.catchUpRowsPerSec} |`);
}
