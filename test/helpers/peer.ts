import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { asPeer } from './links.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = join(ROOT, 'node/cli/main.ts');

/** A peer running as its own process, started with the real CLI. */
export interface PeerProcess {
  url: string;
  /** Multiaddr other peers join with. */
  joinAddr: string;
  /** Swarm key file of the mesh this peer is in. */
  swarmKey: string;
  token: string;
  dataDir: string;
  process: ChildProcess;
  /** What it printed on stdout until it was ready. */
  startup: string[];
  /** Runs the `sprite` CLI against this peer. */
  cli(args: string[], options?: { input?: string; env?: Record<string, string>; cwd?: string }): Promise<CliResult>;
  /** Authenticated JSON request to the API. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

/** What a CLI run printed and its exit status. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Starts `sprite peer start` on a fresh (or given) data dir and an ephemeral port. */
export async function startPeer(
  options: {
    dataDir?: string; poolDepth?: number; poolFallback?: 'cold' | 'fail'; listen?: string;
    /** Join this peer's mesh (its bootstrap address and swarm key). */
    join?: PeerProcess;
    /** Dial this peer without its swarm key (the new peer makes its own): for refusal tests. */
    joinAddrOnly?: PeerProcess;
    /** More `peer start` flags (the edge proxy listens on ports picked by the OS unless these say otherwise). */
    args?: string[];
    /** A cgroup.procs file the peer process joins before it starts (see helpers/partition.ts). */
    cgroup?: string;
  } = {},
): Promise<PeerProcess> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'sprite-test-')));
  const args = [
    CLI, 'peer', 'start', '--data-dir', dataDir, '--api', '127.0.0.1:0', '--listen', options.listen ?? '/ip4/127.0.0.1/tcp/0', '--pool-depth', String(options.poolDepth ?? 1),
    '--proxy-http', '127.0.0.1:0', '--proxy-https', '127.0.0.1:0', ...(options.args ?? []),
  ];
  if (options.poolFallback) args.push('--pool-fallback', options.poolFallback);
  // Tests never reach the network: busybox unless a test picks the image itself, and sprites' only
  // uplink and upstream resolver are loopback unless a test gives its own (test/helpers/internet.ts).
  if (!options.args?.includes('--image')) args.push('--image', 'busybox');
  if (!options.args?.some((arg) => arg.startsWith('--egress'))) args.push('--egress-uplink', 'lo', '--egress-dns', '127.0.0.1');
  if (options.join) args.push('--bootstrap', options.join.joinAddr, '--swarm-key', options.join.swarmKey);
  if (options.joinAddrOnly) args.push('--bootstrap', options.joinAddrOnly.joinAddr);
  const child = options.cgroup
    ? spawn('sh', ['-c', 'echo $$ > "$1" && shift && exec "$@"', 'sh', options.cgroup, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const startup: string[] = [];
  const { url, joinAddr, swarmKey } = await new Promise<{ url: string; joinAddr: string; swarmKey: string }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`peer not ready in 60 s: ${stderr}`)), 60_000);
    let api = '';
    lines.on('line', (line) => {
      startup.push(line);
      const ready = /API (http:\/\/\S+),/.exec(line);
      if (ready) api = ready[1]!;
      const joinLine = /--bootstrap (\S+) --swarm-key (\S+)/.exec(line);
      if (api && joinLine) {
        clearTimeout(timer);
        resolve({ url: api, joinAddr: joinLine[1]!, swarmKey: joinLine[2]! });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`peer exited with ${code}: ${stderr}`));
    });
  });
  const token = (await readFile(join(dataDir, 'token'), 'utf8')).trim();
  const env = { SPRITE_API: url, SPRITE_TOKEN: token };
  const signal = async (name: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
    await exited;
  };
  return {
    url, joinAddr, swarmKey, token, dataDir, process: child, startup,
    cli: (cliArgs, cliOptions = {}) => runCli(cliArgs, { ...env, ...cliOptions.env }, cliOptions.input, cliOptions.cwd),
    api: async (method, path, body) => {
      const res = await fetch(`${url}${path}`, {
        method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
  };
}

/** Runs the CLI as a process. */
export function runCli(args: string[], env: Record<string, string>, input?: string, cwd?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
    child.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** Removes a test data dir. */
export async function removeDataDir(dir: string): Promise<void> {
  // A killed peer's storage daemon may still be writing its cache for a moment: retry a non-empty rmdir.
  await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
}

/** Host names of the egress of the peer on `dataDir` (see vm/net/egress.ts egressNames; the tag is node/peer.ts's peer key). */
export function egressOf(dataDir: string): { vethPrefix: string; device: string; table: string } {
  const tag = createHash('sha256').update(dataDir).digest('hex').slice(0, 6);
  return { vethPrefix: `sv${tag}`, device: `sg${tag}`, table: `sprites_${tag}` };
}

/** The peer's sprite veths, their routes, its gateway bridge and nftables table and sprite chains, one line each. */
export function egressState(dataDir: string): { veths: string[]; routes: string[]; device: string[]; table: string[]; chains: string[] } {
  const names = egressOf(dataDir);
  const links = (JSON.parse(execFileSync('ip', ['-j', 'link', 'show']).toString()) as { ifname: string }[]).map((link) => link.ifname);
  const routes = (JSON.parse(execFileSync('ip', ['-j', '-4', 'route', 'show']).toString()) as { dst: string; dev: string }[])
    .filter((route) => route.dev.startsWith(names.vethPrefix) || route.dev === names.device).map((route) => `${route.dst} dev ${route.dev}`);
  let table = '';
  try {
    table = execFileSync('nft', ['list', 'table', 'inet', names.table], { stdio: 'pipe' }).toString();
  } catch { /* no table */ }
  return {
    veths: links.filter((name) => name.startsWith(names.vethPrefix)),
    routes,
    device: links.filter((name) => name === names.device),
    table: table === '' ? [] : [names.table],
    chains: [...table.matchAll(/chain (s_\S+)/g)].map((match) => match[1]!),
  };
}

/** Mounts, loop devices, cgroups and egress pieces (veths, addresses, nftables) that mention `dataDir` or the peer: for leak checks. */
export async function leftovers(dataDir: string): Promise<string[]> {
  const found: string[] = [];
  const egress = egressState(dataDir);
  for (const [kind, items] of Object.entries(egress)) for (const item of items) found.push(`egress ${kind}: ${item}`);
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of mounts.split('\n')) if (line.includes(dataDir)) found.push(`mount: ${line}`);
  const loops = execFileSync('losetup', ['-a']).toString();
  for (const line of loops.split('\n')) if (line.includes(dataDir)) found.push(`loop: ${line}`);
  return found;
}

/** What leftovers finds that no sprite owns but the running peer itself: the storage daemon's FUSE mount, the gateway bridge, its route and the table. */
export async function spriteLeftovers(dataDir: string): Promise<string[]> {
  const { device } = egressOf(dataDir);
  const peerOwn = (line: string): boolean => line.includes('fuse.sprite-storage') || line.startsWith('egress device:') || line.startsWith('egress table:') || (line.startsWith('egress routes:') && line.endsWith(` dev ${device}`));
  return (await leftovers(dataDir)).filter((line) => !peerOwn(line));
}

/** Polls `check` until it returns a value or the time runs out. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Creates sprite `name` on exactly this peer: a placed create skips arbitration and placement. Only
 * a peer may place, over the peer link: the test sends it as the peer itself (see asPeer).
 */
export async function createOn(peer: PeerProcess, name: string): Promise<void> {
  const answer = await asPeer(peer, 'place', 'POST', '/v1/sprites', JSON.stringify({ name }));
  assert.equal(answer.status, 201, answer.body);
}
