import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { egressState, eventually, leftovers, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

/** Pids of sprite-init processes of one data dir. */
function initPids(dataDir: string): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args=']).toString();
  return out.split('\n').filter((line) => line.includes('init/main.ts') && line.includes(dataDir)).map((line) => Number(line.trim().split(/\s+/)[0]));
}

async function cgroupChildren(dataDir: string): Promise<string[]> {
  const peerKey = createHash('sha256').update(dataDir).digest('hex').slice(0, 10);
  const found: string[] = [];
  for (const controller of ['memory', 'pids', 'cpu', 'freezer', 'devices']) {
    const entries = await readdir(`/sys/fs/cgroup/${controller}/sprites/${peerKey}`, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) if (entry.isDirectory()) found.push(`${controller}/${entry.name}`);
  }
  return found;
}

describe('sprite lifecycle on one peer', () => {
  const peers: PeerProcess[] = [];
  after(async () => {
    for (const peer of peers) {
      await peer.stop();
      await removeDataDir(peer.dataDir);
    }
  });

  test('a killed sprite-init marks the sprite failed, the peer stays up, and start brings it back', async () => {
    const peer = await startPeer({ poolDepth: 0 });
    peers.push(peer);
    assert.equal((await peer.api('POST', '/v1/sprites', { name: 'fragile' })).status, 201);
    await peer.cli(['exec', 'fragile', '--', 'sh', '-c', 'echo survives > /root/data']);
    const [pid] = initPids(peer.dataDir);
    assert.ok(pid, 'sprite-init is running');
    process.kill(pid!, 'SIGKILL');
    const failed = await eventually(async () => {
      const got = await peer.api('GET', '/v1/sprites/fragile');
      return got.body.status === 'failed' ? got.body : undefined;
    }, 10_000, 'failed state');
    assert.match(failed.reason, /sprite-init exited/);
    assert.match((await peer.cli(['list'])).stdout, /fragile\s+failed/);
    assert.equal((await fetch(`${peer.url}/v1/health`)).status, 200);
    const exec = await peer.cli(['exec', 'fragile', '--', 'true']);
    assert.equal(exec.code, 1);
    assert.match(exec.stderr, /is failed/);
    const started = await peer.cli(['start', 'fragile']);
    assert.equal(started.code, 0, started.stderr);
    assert.equal((await peer.cli(['exec', 'fragile', '--', 'cat', '/root/data'])).stdout, 'survives\n');
  });

  test('a peer stopped with its output pipes gone cleans up; after a restart its sprites are listed, running again, with their disks', async () => {
    const peer = await startPeer({ poolDepth: 1 });
    assert.equal((await peer.api('POST', '/v1/sprites', { name: 'keeper' })).status, 201);
    await peer.cli(['exec', 'keeper', '--', 'sh', '-c', 'echo persisted > /root/note; sync']);
    await peer.cli(['services', 'create', 'keeper', 'sleeper', '--', 'sleep', '1000']);
    // Stopped as by a supervisor that died first: the peer's stdout and stderr lead nowhere.
    peer.process.stdout!.destroy();
    peer.process.stderr!.destroy();
    await peer.stop();
    assert.equal(peer.process.exitCode, 0);
    assert.deepEqual(initPids(peer.dataDir), []);
    assert.deepEqual(await leftovers(peer.dataDir), []);

    const again = await startPeer({ dataDir: peer.dataDir, poolDepth: 1 });
    peers.push(again);
    await eventually(async () => (await again.api('GET', '/v1/sprites/keeper')).body.status === 'running', 15_000, 'keeper running');
    assert.equal((await again.cli(['exec', 'keeper', '--', 'cat', '/root/note'])).stdout, 'persisted\n');
    const services = await again.api('GET', '/v1/sprites/keeper/services');
    assert.deepEqual(services.body.map((s: { name: string; state: { status: string } }) => [s.name, s.state.status]), [['sleeper', 'running']]);
  });

  test('a peer killed with SIGKILL takes its sandboxes down, and the next start cleans up and resumes', async () => {
    const peer = await startPeer({ poolDepth: 1 });
    assert.equal((await peer.api('POST', '/v1/sprites', { name: 'phoenix' })).status, 201);
    await peer.kill();
    await eventually(() => initPids(peer.dataDir).length === 0, 10_000, 'sprite-inits to die with the peer');
    const again = await startPeer({ dataDir: peer.dataDir, poolDepth: 1 });
    peers.push(again);
    await eventually(async () => (await again.api('GET', '/v1/sprites/phoenix')).body.status === 'running', 15_000, 'phoenix running');
    assert.equal((await again.cli(['exec', 'phoenix', '--', 'hostname'])).stdout, 'phoenix\n');
  });

  test('sandboxes of another peer on the host do not pin this peer\'s disks', async () => {
    const a = peers[0]!;
    assert.equal((await a.api('POST', '/v1/sprites', { name: 'pinned' })).status, 201);
    // b's warm sandboxes start while a's disk is mounted: their namespaces copy the host's mounts.
    const b = await startPeer({ poolDepth: 2 });
    peers.push(b);
    await eventually(async () => (await b.api('GET', '/v1/pool')).body.ready === 2, 30_000, 'b pool warm');
    const destroyed = await a.api('DELETE', '/v1/sprites/pinned');
    // Pinned by b, a's loop device would not let go and the destroy would fail.
    assert.equal(destroyed.status, 204, JSON.stringify(destroyed.body));
  });

  test('an empty pool fails fast with 503 when the fallback is fail, and creates cold otherwise', async () => {
    const strict = await startPeer({ poolDepth: 0, poolFallback: 'fail' });
    peers.push(strict);
    const refused = await strict.api('POST', '/v1/sprites', { name: 'nope' });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error, 'ERR_POOL_EMPTY');
    assert.equal((await strict.api('GET', '/v1/sprites')).body.sprites.length, 0);

    const lenient = peers[0]!;
    const cold = await lenient.api('POST', '/v1/sprites', { name: 'cold-one' });
    assert.equal(cold.status, 201);
    assert.ok((await lenient.api('GET', '/v1/pool')).body.cold_creates >= 1);
  });

  test('50 create/destroy cycles, two at a time, leave no mount, loop device, cgroup, veth, address, nftables rule, runc state or directory behind', async () => {
    const peer = await startPeer({ poolDepth: 2 });
    peers.push(peer);
    // Only this peer's loop devices: other suites may run on the machine at the same time.
    const loops = (): number => execFileSync('losetup', ['-a']).toString().split('\n').filter((line) => line.includes(peer.dataDir)).length;
    const before = loops();
    // Two lanes at once: creates and destroys overlap with each other and with the pool's refills.
    await Promise.all([0, 1].map(async (lane) => {
      for (let i = lane; i < 50; i += 2) {
        const created = await peer.api('POST', '/v1/sprites', { name: `cycle-${i}` });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const destroyed = await peer.api('DELETE', `/v1/sprites/cycle-${i}`);
        assert.equal(destroyed.status, 204);
      }
    }));
    // Only the pool's sandboxes (2) may remain.
    const pool = await peer.api('GET', '/v1/pool');
    const pooled = pool.body.ready + pool.body.warming;
    const spriteDirs = await readdir(join(peer.dataDir, 'sprites'));
    assert.ok(spriteDirs.length <= pooled, `sprite dirs ${spriteDirs.length} > pooled ${pooled}`);
    // The storage daemon exports one file per attached volume on its FUSE mount.
    const attached = (await readdir(join(peer.dataDir, 'storage', 'fuse'))).filter((f) => !f.startsWith('image-'));
    assert.ok(attached.length <= pooled, `attached volumes ${attached.length}`);
    assert.ok((await cgroupChildren(peer.dataDir)).length <= pooled * 5);
    // One veth, host route and firewall chain per pooled sandbox, no more (the gateway's bridge and table stay while the peer runs).
    const egress = egressState(peer.dataDir);
    for (const kind of ['veths', 'chains'] as const) assert.ok(egress[kind].length <= pooled, `egress ${kind}: ${egress[kind].join(', ')}`);
    assert.ok(egress.routes.length <= pooled + 1, `egress routes: ${egress.routes.join(', ')}`);
    assert.equal(egress.table.length, 1);
    const after = loops();
    assert.ok(after - before <= pooled, `loop devices grew by ${after - before}`);
    await peer.stop();
    peers.pop();
    assert.deepEqual(await leftovers(peer.dataDir), []);
    assert.deepEqual(await cgroupChildren(peer.dataDir), []);
    assert.deepEqual(initPids(peer.dataDir), []);
    await removeDataDir(peer.dataDir);
  });
});
