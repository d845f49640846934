import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { leftovers, removeDataDir } from '../helpers/peer.ts';

const CLI = new URL('../../node/cli/main.ts', import.meta.url).pathname;

/** A TCP port on loopback held by this test, so a peer told to listen there fails to. */
async function holdPort(): Promise<{ port: number; release(): Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, release: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const held = await holdPort();
  await held.release();
  return held.port;
}

/** Runs `sprite peer start` to its end; a start that fails must exit by itself. */
function startFails(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'peer', 'start', '--image', 'busybox', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the peer did not exit after its start failed: ${stdout} ${stderr}`));
    }, 90_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Processes whose command line names the data dir (the storage daemon, sprite-init). */
function processesOf(dataDir: string): string[] {
  return execFileSync('ps', ['-eo', 'pid=,args=']).toString().split('\n').filter((line) => line.includes(dataDir));
}

/** Whether something accepts connections on a loopback port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('a peer whose start fails halfway leaves nothing behind', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await removeDataDir(dir);
  });

  for (const where of ['the mesh (its libp2p listen address is taken)', 'the edge proxy (its port is taken), with the API and the mesh already running'] as const) {
    test(`when ${where} fails to start`, async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'sprite-test-'));
      dirs.push(dataDir);
      const taken = await holdPort();
      try {
        const [api, mesh, proxy] = [await freePort(), await freePort(), await freePort()];
        const meshFails = where.startsWith('the mesh');
        const result = await startFails([
          '--data-dir', dataDir, '--api', `127.0.0.1:${api}`, '--pool-depth', '1', '--proxy-https', '127.0.0.1:0',
          '--listen', `/ip4/127.0.0.1/tcp/${meshFails ? taken.port : mesh}`, '--proxy-http', `127.0.0.1:${meshFails ? proxy : taken.port}`,
        ]);
        assert.notEqual(result.code, 0, result.stdout);
        assert.doesNotMatch(result.stdout, /ready/);
        assert.equal(result.stderr.trim().split('\n').filter((line) => !line.startsWith('{')).length, 1, `one line of error: ${result.stderr}`);
        assert.deepEqual(processesOf(dataDir), []);
        assert.deepEqual(await leftovers(dataDir), []);
        for (const port of [api, mesh, proxy]) assert.equal(await listening(port), false, `port ${port} is closed again`);
        assert.equal(await readFile(join(dataDir, 'peer.pid'), 'utf8').catch(() => 'gone'), 'gone', 'the data dir lock is released');
      } finally {
        await taken.release();
      }
    });
  }
});
