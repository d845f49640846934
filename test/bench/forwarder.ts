/**
 * Forwarder A/B: one in-process proxy (this process, pinned to core 0) in front of a small Node app
 * on a Unix socket (its own process), measured with wrk (core 1) over HTTP and HTTPS, alternating
 * the undici and http-proxy-3 forwarders round by round so that load from other work on the
 * machine hits both alike. The full path through real peers and sprites is test/bench/proxy.ts.
 *
 *   node test/bench/forwarder.ts [--rounds 3] [--duration 8] [--connections 50]
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHttpProxyForwarder, createUndiciForwarder, type Forwarder } from '../../proxy/index.ts';
import { eventually } from '../helpers/peer.ts';
import { FakeMesh, FakeSprites, portOf, putSprite, tempDir, testProxy } from '../proxy/helpers.ts';
import { option, percentile } from './stats.ts';

const run = promisify(execFile);
const ROUNDS = option('rounds', 3);
const DURATION = option('duration', 8);
const CONNECTIONS = option('connections', 50);
const APP = `require('node:http').createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('hello from web\\n'); }).listen(process.argv[1]);`;

async function wrk(url: string): Promise<{ rps: number; p99: string }> {
  const common = ['-c', '1', 'wrk', '-t1', `-c${CONNECTIONS}`, '--latency', '-H', 'Host: web.sprites.localhost'];
  await run('taskset', [...common, '-d2s', url]);
  const { stdout } = await run('taskset', [...common, `-d${DURATION}s`, url]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  if (!(rps > 0) || /Non-2xx|Socket errors/.test(stdout)) throw new Error(`wrk:\n${stdout}`);
  return { rps, p99: /^\s+99%\s+(\S+)/m.exec(stdout)?.[1] ?? '?' };
}

async function main(): Promise<void> {
  const { dir, remove } = await tempDir();
  const socket = join(dir, 'app.sock');
  const app = spawn('taskset', ['-c', '1', process.execPath, '-e', APP, socket], { stdio: 'ignore' });
  await run('taskset', ['-a', '-p', '-c', '0', String(process.pid)]);
  const results: Record<string, { http: number[]; https: number[]; p99: string[] }> = {};
  try {
    await eventually(async () => (await run('test', ['-S', socket]).then(() => true, () => undefined)), 10_000, 'the app');
    const kinds: [string, () => Forwarder][] = [['undici', () => createUndiciForwarder()], ['http-proxy-3', () => createHttpProxyForwarder()]];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [kind, make] of round % 2 === 0 ? kinds : [...kinds].reverse()) {
        const mesh = new FakeMesh('peer-one');
        const sprites = new FakeSprites();
        sprites.sockets.set('web', socket);
        putSprite([mesh], { name: 'web', owner: 'peer-one', url_auth: 'public' });
        const proxy = testProxy(mesh, sprites, { https: { host: '127.0.0.1', port: 0 } }, make());
        const address = await proxy.start();
        const http = await wrk(`http://127.0.0.1:${portOf(address.http)}/`);
        const https = await wrk(`https://127.0.0.1:${portOf(address.https)}/`);
        await proxy.stop();
        mesh.store.close();
        const entry = (results[kind] ??= { http: [], https: [], p99: [] });
        entry.http.push(http.rps);
        entry.https.push(https.rps);
        entry.p99.push(`${http.p99}/${https.p99}`);
        process.stderr.write(`round ${round + 1} ${kind}: HTTP ${Math.round(http.rps)} (p99 ${http.p99}), HTTPS ${Math.round(https.rps)} (p99 ${https.p99})\n`);
      }
    }
  } finally {
    app.kill();
    await once(app, 'exit').catch(() => undefined);
    await remove();
  }
  process.stdout.write(`\n## Forwarders (test/bench/forwarder.ts), ${CONNECTIONS} connections, ${DURATION} s per case, ${ROUNDS} rounds\n\n| forwarder | HTTP req/s (median) | HTTPS req/s (median) | every round HTTP / HTTPS | p99 HTTP/HTTPS per round |\n| --- | --- | --- | --- | --- |\n`);
  for (const [kind, r] of Object.entries(results)) {
    process.stdout.write(`| ${kind} | ${Math.round(percentile(r.http, 50))} | ${Math.round(percentile(r.https, 50))} | ${r.http.map((x, i) => `${Math.round(x)}/${Math.round(r.https[i]!)}`).join(', ')} | ${r.p99.join(', ')} |\n`);
  }
}

await main();
