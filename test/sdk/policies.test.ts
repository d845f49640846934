import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../helpers/peer.ts';
import { twoPeers, type TwoPeers } from './helpers.ts';

const MiB = 1024 * 1024;
const MEMORY_ROOT = '/sys/fs/cgroup/memory/sprites';

/** The memory limit of the running sprite with volume `id` as the host's cgroup has it (v1 `memory.limit_in_bytes`, else v2 `memory.max`). */
async function memoryLimit(id: string): Promise<number | undefined> {
  const v1 = await readdir(MEMORY_ROOT).catch(() => undefined);
  const [root, file] = v1 ? [MEMORY_ROOT, 'memory.limit_in_bytes'] : ['/sys/fs/cgroup/sprites', 'memory.max'];
  for (const peerKey of v1 ?? (await readdir(root).catch(() => []))) {
    const text = await readFile(join(root, peerKey, id, file), 'utf8').catch(() => undefined);
    if (text !== undefined) return Number(text.trim());
  }
  return undefined;
}

describe('policies through the SDK, on two peers', () => {
  let mesh: TwoPeers;
  let id: string;
  before(async () => {
    // The operator's maximum: a resources policy may lower memory under it, never raise it past.
    mesh = await twoPeers('pol', ['--sprite-memory', '512MiB']);
    id = (await mesh.owner.api('GET', '/v1/sprites/pol')).body.id;
  });
  after(() => mesh?.stop());

  test('the network policy is validated, stored and returned, through either peer', async () => {
    assert.deepEqual(await mesh.viaOther.getNetworkPolicy(), { rules: [] });
    await mesh.viaOther.updateNetworkPolicy({ rules: [{ domain: 'GitHub.com', action: 'allow' }, { domain: '*.npmjs.org', action: 'allow' }, { domain: '*', action: 'deny' }, { include: 'defaults' }] });
    assert.deepEqual(await mesh.viaOwner.getNetworkPolicy(), {
      rules: [{ domain: 'github.com', action: 'allow' }, { domain: '*.npmjs.org', action: 'allow' }, { domain: '*', action: 'deny' }, { include: 'defaults' }],
    });
    for (const rules of [
      [{ domain: 'foo.*.com', action: 'allow' }], [{ domain: '*example.com', action: 'allow' }], [{ domain: 'a..b', action: 'deny' }],
      [{ domain: 'ok.com', action: 'maybe' }], [{ include: 'everything' }], [{ domain: 'ok.com', action: 'allow', include: 'defaults' }], [{ domain: '-bad.com', action: 'allow' }],
    ]) {
      await assert.rejects(mesh.viaOther.updateNetworkPolicy({ rules } as never), /Invalid policy.*ERR_BAD_REQUEST/, JSON.stringify(rules));
    }
    assert.equal((await mesh.viaOther.getNetworkPolicy()).rules.length, 4);
  });

  test('the privileges policy is validated, stored, returned and deleted', async () => {
    assert.deepEqual(await mesh.viaOther.getPrivilegesPolicy(), {});
    await mesh.viaOther.updatePrivilegesPolicy({ profile: 'standard', devices: ['/dev/fuse'], noNewPrivileges: true });
    assert.deepEqual(await mesh.viaOwner.getPrivilegesPolicy(), { profile: 'standard', devices: ['/dev/fuse'], noNewPrivileges: true });
    await assert.rejects(mesh.viaOther.updatePrivilegesPolicy({ profile: 'root' } as never), /status 400.*body.profile/);
    await assert.rejects(mesh.viaOther.updatePrivilegesPolicy({ devices: ['/etc/passwd'] }), /status 400.*body.devices\[0\]/);
    await assert.rejects(mesh.viaOther.updatePrivilegesPolicy({ devices: ['/dev/../etc'] }), /status 400/);
    await mesh.viaOther.deletePrivilegesPolicy();
    assert.deepEqual(await mesh.viaOther.getPrivilegesPolicy(), {});
  });

  test('the resources policy sets the running sprite\'s memory limit at once, within the operator\'s maximum', async () => {
    assert.deepEqual(await mesh.viaOther.getResourcesPolicy(), { memory: { limitMB: 512, autoscale: undefined } });
    assert.equal(await memoryLimit(id), 512 * MiB);
    await mesh.viaOther.updateResourcesPolicy({ memory: { limitMB: 256 } });
    assert.equal(await memoryLimit(id), 256 * MiB);
    assert.equal((await mesh.viaOwner.getResourcesPolicy()).memory?.limitMB, 256);
    await assert.rejects(mesh.viaOther.updateResourcesPolicy({ memory: { limitMB: 4096 } }), /status 400.*at most 512/);
    await assert.rejects(mesh.viaOther.updateResourcesPolicy({ memory: { limitMB: 8 } }), /status 400.*at least 16/);
    assert.equal(await memoryLimit(id), 256 * MiB);
  });

  test('the memory limit holds on every later start', async () => {
    assert.equal((await mesh.other.cli(['stop', 'pol'])).code, 0);
    assert.equal(await memoryLimit(id), undefined);
    assert.equal((await mesh.other.cli(['start', 'pol'])).code, 0);
    assert.equal(await memoryLimit(id), 256 * MiB);
  });

  test('policies follow the sprite to another peer (drain) and act there', async () => {
    const ownerId = (await mesh.owner.api('GET', '/v1/health')).body.peer as string;
    const drained = await mesh.other.cli(['peer', 'drain', ownerId]);
    assert.equal(drained.code, 0, drained.stderr);
    const moved = await eventually(async () => {
      const record = (await mesh.other.api('GET', '/v1/sprites/pol')).body;
      return record.owner !== ownerId && record.state === 'running' ? record : undefined;
    }, 30_000, 'the sprite running on the other peer');
    assert.equal(moved.id, id);
    assert.equal(await memoryLimit(id), 256 * MiB);
    assert.equal((await mesh.viaOwner.getResourcesPolicy()).memory?.limitMB, 256);
    assert.equal((await mesh.viaOther.getNetworkPolicy()).rules[0]?.domain, 'github.com');
    await mesh.viaOwner.deleteResourcesPolicy();
    assert.equal(await memoryLimit(id), 512 * MiB);
    assert.equal((await mesh.viaOther.getResourcesPolicy()).memory?.limitMB, 512);
  });
});
