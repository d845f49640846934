/**
 * Edge proxy benchmark: req/s and p99 with wrk at 50 keep-alive connections for the same target
 * (a Node app on the sprite's :8080, reached through the sprite's HTTP port socket) served
 *   - directly (wrk inside the sprite's network namespace, no proxy at all),
 *   - by nginx from Debian proxying to the same socket (reference),
 *   - by the owner peer's proxy (one hop) and through another peer's proxy (two hops),
 * over HTTP and HTTPS; then the time a wake through the proxy adds to the wake itself, and a soak
 * of early disconnects and WebSocket churn that samples the peers' file descriptors and memory.
 * Proxies (both peers, and nginx with one worker) are pinned to core 0 with taskset, wrk to core 1;
 * the sprite's own processes are not pinned. One extra two-hop case gives the owner peer core 1.
 *
 * With `--rounds N` the throughput cases run N times in turn (a shared machine's load then hits every
 * case alike); the table gives each case's median round, and the ratios are medians of per-round ratios.
 *
 *   node test/bench/proxy.ts [--duration 10] [--connections 50] [--rounds 1] [--wakes 5] [--soak-seconds 600]
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { generateMeshCert } from '../../proxy/index.ts';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { SPRITE_APP_COMMAND, spriteAppSource } from '../proxy/sprite-app.ts';
import { option, percentile } from './stats.ts';

const run = promisify(execFile);
const DURATION = option('duration', 10);
const CONNECTIONS = option('connections', 50);
const WAKES = option('wakes', 5);
const ROUNDS = option('rounds', 1);
const SOAK_SECONDS = option('soak-seconds', 600);
const HOST = 'web.sprites.localhost';

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  errors: string;
}

/** Parses wrk's latency lines (`50%  1.23ms`) into milliseconds. */
function ms(text: string): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (!match) return NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

/** Runs wrk pinned to core 1; `netns` runs it inside a sprite's network namespace. */
async function wrk(url: string, headers: Record<string, string>, netns?: string): Promise<WrkResult> {
  const wrkArgs = ['-t1', `-c${CONNECTIONS}`, `-d${DURATION}s`, '--latency', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url];
  // A short warm-up fills the connection pools and the JIT.
  const warm = ['-t1', `-c${CONNECTIONS}`, '-d2s', ...wrkArgs.slice(3)];
  const prefix = netns ? ['nsenter', `--net=${netns}`, 'taskset', '-c', '1', 'wrk'] : ['taskset', '-c', '1', 'wrk'];
  await run(prefix[0]!, [...prefix.slice(1), ...warm]);
  const { stdout } = await run(prefix[0]!, [...prefix.slice(1), ...wrkArgs]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const p50 = ms(/^\s+50%\s+(\S+)/m.exec(stdout)?.[1] ?? '');
  const p99 = ms(/^\s+99%\s+(\S+)/m.exec(stdout)?.[1] ?? '');
  const errors = [/Socket errors:.*/.exec(stdout)?.[0], /Non-2xx or 3xx responses: \d+/.exec(stdout)?.[0]].filter(Boolean).join('; ');
  if (!(rps > 0)) throw new Error(`wrk printed no rate:\n${stdout}`);
  return { rps, p50, p99, errors };
}

/** Pins every thread of a process to one core. */
async function pin(pid: number, core: number): Promise<void> {
  await run('taskset', ['-a', '-p', '-c', String(core), String(pid)]);
}

/** Starts nginx (one worker, core 0) proxying HTTP and HTTPS to the socket with keep-alive. */
async function startNginx(dir: string, socket: string): Promise<{ http: number; https: number; process: ChildProcess; stop: () => Promise<void> }> {
  const free = async (): Promise<number> => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    return port;
  };
  const [httpPort, httpsPort] = [await free(), await free()];
  const cert = await generateMeshCert('sprites.localhost');
  await writeFile(join(dir, 'cert.pem'), cert.cert);
  await writeFile(join(dir, 'key.pem'), cert.key);
  const proxyBlock = `
      location / {
        proxy_pass http://sprite;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;
        proxy_buffering off;
      }`;
  await writeFile(join(dir, 'nginx.conf'), `
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  upstream sprite { server unix:${socket}; keepalive 64; }
  server { listen 127.0.0.1:${httpPort}; ${proxyBlock} }
  server { listen 127.0.0.1:${httpsPort} ssl http2; ssl_certificate ${dir}/cert.pem; ssl_certificate_key ${dir}/key.pem; ${proxyBlock} }
}
`);
  const child = spawn('taskset', ['-c', '0', 'nginx', '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await eventually(async () => {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    return new Promise<boolean | undefined>((resolve) => {
      const socket = net.connect(httpPort, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      }).on('error', () => resolve(undefined));
    });
  }, 10_000, 'nginx to listen');
  return {
    http: httpPort, https: httpsPort, process: child,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The proxy address a peer publishes for itself. */
async function proxyOf(peer: PeerProcess): Promise<{ http: number; https: number }> {
  const self = (await peer.api('GET', '/v1/peers')).body.peers.find((p: { self: boolean }) => p.self);
  return { http: Number(new URL(self.proxy.http).port), https: Number(new URL(self.proxy.https).port) };
}

/** One GET with Host set; resolves with the status. */
function get(port: number, path = '/', socketPath?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(socketPath ? { socketPath, path, headers: { host: HOST }, agent: false } : { host: '127.0.0.1', port, path, headers: { host: HOST }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
}

/** Open descriptors and resident memory (MiB) of a process. */
async function usage(pid: number): Promise<{ fds: number; rssMiB: number }> {
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  const rss = Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
  return { fds, rssMiB: Math.round(rss * 10) / 10 };
}

const median = (values: number[]): number => Math.round(percentile(values, 50) * 10) / 10;

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'sprite-bench-proxy-'));
  const peers: PeerProcess[] = [];
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  try {
    const owner = await startPeer({ poolDepth: 1 });
    peers.push(owner);
    const edge = await startPeer({ poolDepth: 0, join: owner });
    peers.push(edge);
    const created = await owner.api('POST', '/v1/sprites', { name: 'web' });
    if (created.status !== 201) throw new Error(`create: ${JSON.stringify(created.body)}`);
    const spriteDir = join(owner.dataDir, 'sprites', created.body.id as string);
    const socket = join(spriteDir, 'run', 'http.sock');
    const netns = join(spriteDir, 'run', 'ns', 'net');
    await owner.cli(['exec', 'web', '--', 'sh', '-c', 'mkdir -p /srv && cat > /srv/app.mjs'], { input: spriteAppSource('web') });
    await owner.cli(['services', 'create', 'web', 'app', '--http-port', '8080', '--', ...SPRITE_APP_COMMAND]);
    // Public, like nginx: the auth check has its own row below.
    await owner.cli(['url', 'update', 'web', '--auth', 'public']);
    const ownerProxy = await proxyOf(owner);
    const edgeProxy = await proxyOf(edge);
    await eventually(async () => (await get(edgeProxy.http).catch(() => 0)) === 200, 30_000, 'the sprite through two hops');
    nginx = await startNginx(work, socket);
    for (const peer of peers) await pin(peer.process.pid!, 0);
    const host = { Host: HOST };
    const auth = { Host: HOST, Authorization: `Bearer ${owner.token}` };
    const cases: [string, () => Promise<WrkResult>][] = [
      ['direct (wrk in the sprite\'s netns -> :8080)', () => wrk('http://127.0.0.1:8080/', host, netns)],
      ['nginx, HTTP', () => wrk(`http://127.0.0.1:${nginx!.http}/`, host)],
      ['nginx, HTTPS', () => wrk(`https://127.0.0.1:${nginx!.https}/`, host)],
      ['proxy one hop, HTTP', () => wrk(`http://127.0.0.1:${ownerProxy.http}/`, host)],
      ['proxy one hop, HTTPS', () => wrk(`https://127.0.0.1:${ownerProxy.https}/`, host)],
      ['proxy two hops, HTTP', () => wrk(`http://127.0.0.1:${edgeProxy.http}/`, host)],
      ['proxy two hops, HTTPS', () => wrk(`https://127.0.0.1:${edgeProxy.https}/`, host)],
    ];
    const rounds: Map<string, WrkResult>[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const results = new Map<string, WrkResult>();
      rounds.push(results);
      for (const [name, measure] of cases) {
        results.set(name, await measure());
        process.stderr.write(`round ${round + 1}, ${name}: ${JSON.stringify(results.get(name))}\n`);
      }
      // Each peer with a core of its own, as on two machines (the owner shares core 1 with wrk).
      await pin(owner.process.pid!, 1);
      results.set('proxy two hops, HTTPS, owner peer on core 1', await wrk(`https://127.0.0.1:${edgeProxy.https}/`, host));
      await pin(owner.process.pid!, 0);
      await owner.cli(['url', 'update', 'web', '--auth', 'sprite']);
      await eventually(async () => (await get(ownerProxy.http)) === 401, 10_000, 'sprite auth');
      results.set('proxy one hop, HTTPS, sprite auth (bearer)', await wrk(`https://127.0.0.1:${ownerProxy.https}/`, auth));
      await owner.cli(['url', 'update', 'web', '--auth', 'public']);
      await eventually(async () => (await get(edgeProxy.http)) === 200, 10_000, 'public again');
    }

    const middle = (values: number[]): number => percentile(values, 50);
    process.stdout.write(`\n## Proxy (test/bench/proxy.ts), ${CONNECTIONS} connections, ${DURATION} s per case, ${ROUNDS} round(s)\n\n| case | req/s | p50 ms | p99 ms | req/s every round | errors |\n| --- | --- | --- | --- | --- | --- |\n`);
    for (const name of rounds[0]!.keys()) {
      const all = rounds.map((r) => r.get(name)!);
      const errors = all.map((r) => r.errors).filter(Boolean).join('; ');
      process.stdout.write(`| ${name} | ${Math.round(middle(all.map((r) => r.rps)))} | ${middle(all.map((r) => r.p50)).toFixed(2)} | ${middle(all.map((r) => r.p99)).toFixed(2)} | ${all.map((r) => Math.round(r.rps)).join(', ')} | ${errors || 'none'} |\n`);
    }
    const ratio = (a: string, b: string): string => {
      const each = rounds.map((r) => r.get(a)!.rps / r.get(b)!.rps);
      return `${middle(each).toFixed(2)}${ROUNDS > 1 ? ` (rounds: ${each.map((x) => x.toFixed(2)).join(', ')})` : ''}`;
    };
    process.stdout.write(`\nratios: one hop HTTPS / nginx HTTPS = ${ratio('proxy one hop, HTTPS', 'nginx, HTTPS')}, one hop HTTP / nginx HTTP = ${ratio('proxy one hop, HTTP', 'nginx, HTTP')}, `
      + `two hops / one hop = ${ratio('proxy two hops, HTTP', 'proxy one hop, HTTP')} (HTTP), ${ratio('proxy two hops, HTTPS', 'proxy one hop, HTTPS')} (HTTPS)\n`);
    await nginx.stop();
    nginx = undefined;

    // Wake: the wake itself (API start, then until the app answers on its socket) against one request through the proxy.
    const direct: number[] = [];
    const proxied: number[] = [];
    for (let i = 0; i < WAKES; i++) {
      await owner.api('POST', '/v1/sprites/web/stop');
      let started = performance.now();
      await owner.api('POST', '/v1/sprites/web/start');
      await eventually(async () => ((await get(0, '/', socket).catch(() => 0)) === 200 ? true : undefined), 20_000, 'the app after start');
      direct.push(performance.now() - started);
      await owner.api('POST', '/v1/sprites/web/stop');
      await eventually(async () => (await edge.api('GET', '/v1/sprites/web')).body.status === 'stopped' || undefined, 10_000, 'stopped on the edge');
      started = performance.now();
      const status = await get(ownerProxy.http);
      proxied.push(performance.now() - started);
      if (status !== 200) throw new Error(`wake through the proxy answered ${status}`);
    }
    process.stdout.write(`\nwake (n=${WAKES}, median): start + app answering ${median(direct)} ms; one request through the proxy to the stopped sprite ${median(proxied)} ms; the proxy adds ${Math.round((median(proxied) - median(direct)) * 10) / 10} ms\n`);

    if (SOAK_SECONDS > 0) await soak(edge, owner, edgeProxy.http);
  } finally {
    await nginx?.stop();
    for (const peer of peers.reverse()) await peer.stop();
    for (const peer of peers) await removeDataDir(peer.dataDir);
    await rm(work, { recursive: true, force: true });
  }
}

/** Early disconnects, streams cut mid-way and WebSocket churn through two hops, sampling both peers. */
async function soak(edge: PeerProcess, owner: PeerProcess, port: number): Promise<void> {
  const pids = { edge: edge.process.pid!, owner: owner.process.pid! };
  const samples: { t: number; edge: { fds: number; rssMiB: number }; owner: { fds: number; rssMiB: number } }[] = [];
  const sample = async (t: number): Promise<void> => {
    samples.push({ t, edge: await usage(pids.edge), owner: await usage(pids.owner) });
  };
  const deadline = performance.now() + SOAK_SECONDS * 1000;
  let operations = 0;
  const failures = [0, 0, 0, 0];
  const firstError: string[] = [];
  const worker = async (n: number): Promise<void> => {
    for (let i = 0; performance.now() < deadline; i++) {
      operations += 1;
      // Paced: every operation opens fresh connections, and TIME_WAIT would exhaust loopback ports.
      await new Promise((resolve) => setTimeout(resolve, 80));
      const kind = (i + n) % 4;
      try {
        if (kind === 0) {
          await new Promise<void>((resolve) => {
            const req = http.get({ host: '127.0.0.1', port, path: '/sse', headers: { host: HOST } }, (res) => res.once('data', () => req.destroy()));
            req.on('close', () => resolve()).on('error', () => undefined);
          });
        } else if (kind === 1) {
          await new Promise<void>((resolve) => {
            const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host: HOST } });
            req.on('socket', (s) => s.once('connect', () => req.destroy()));
            req.on('close', () => resolve()).on('error', () => undefined);
          });
        } else if (kind === 2) {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { host: HOST } });
          await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
          ws.send('churn');
          await new Promise((resolve) => ws.once('message', resolve));
          if (i % 8 < 4) ws.terminate();
          else ws.close();
          await new Promise((resolve) => ws.once('close', resolve));
        } else {
          const status = await get(port);
          if (status !== 200) throw new Error(`status ${status}`);
        }
      } catch (error) {
        failures[kind]! += 1;
        firstError[kind] ??= (error as Error).message;
      }
    }
  };
  const started = performance.now();
  await sample(0);
  const sampler = setInterval(() => void sample(Math.round((performance.now() - started) / 1000)), 10_000);
  await Promise.all(Array.from({ length: 16 }, (_, i) => worker(i)));
  clearInterval(sampler);
  // Let closing connections finish before the last sample.
  await new Promise((resolve) => setTimeout(resolve, 10_000));
  await sample(Math.round((performance.now() - started) / 1000));
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const max = (pick: (s: (typeof samples)[number]) => number): number => Math.max(...samples.map(pick));
  const failed = failures.reduce((a, b) => a + b, 0);
  process.stdout.write(`\nsoak ${SOAK_SECONDS} s through two hops (16 clients, paced: SSE cut after the first event, requests cut after connect, WebSockets opened/echoed/closed or dropped, plain GETs): ${operations} operations, ${failed} failures${failed ? ` (by kind ${failures.join('/')}: ${firstError.filter(Boolean).join('; ')})` : ''}\n`
    + `samples (s: edge fds/RSS MiB, owner fds/RSS MiB): ${samples.filter((_, i) => i % 6 === 0 || i === samples.length - 1).map((x) => `${x.t}: ${x.edge.fds}/${x.edge.rssMiB}, ${x.owner.fds}/${x.owner.rssMiB}`).join(' | ')}\n`
    + `| peer | fds start | fds end | fds max | RSS start MiB | RSS end MiB | RSS max MiB |\n| --- | --- | --- | --- | --- | --- | --- |\n`
    + `| edge | ${first.edge.fds} | ${last.edge.fds} | ${max((s) => s.edge.fds)} | ${first.edge.rssMiB} | ${last.edge.rssMiB} | ${max((s) => s.edge.rssMiB)} |\n`
    + `| owner | ${first.owner.fds} | ${last.owner.fds} | ${max((s) => s.owner.fds)} | ${first.owner.rssMiB} | ${last.owner.rssMiB} | ${max((s) => s.owner.rssMiB)} |\n`);
}

await main();
