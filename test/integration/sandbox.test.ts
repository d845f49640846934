import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

const CAP_SYS_ADMIN = 21n;

describe('the sandbox isolates and limits a sprite', () => {
  let peer: PeerProcess;
  let id: string;
  const run = async (script: string) => peer.cli(['exec', 'box', '--', 'sh', '-c', script]);

  before(async () => {
    peer = await startPeer({ poolDepth: 1 });
    const created = await peer.api('POST', '/v1/sprites', { name: 'box' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    id = created.body.id;
  });
  after(async () => {
    await peer?.stop();
    if (peer) await removeDataDir(peer.dataDir);
  });

  test('hostname is the sprite name', async () => {
    const result = await run('hostname');
    assert.equal(result.stdout, 'box\n');
  });

  test('loopback and eth0 (egress) in the network namespace, which its root cannot change', async () => {
    const result = await run('ls /sys/class/net; ip -o addr');
    assert.equal(result.code, 0, result.stderr);
    const interfaces = result.stdout.split('\n').filter((line) => /^\d+: /.test(line)).map((line) => line.split(/\s+/)[1]);
    assert.deepEqual([...new Set(interfaces)], ['lo', 'eth0']);
    assert.doesNotMatch(result.stdout, /inet (?!127\.|100\.)/);
    assert.doesNotMatch(result.stdout, /inet6/);
    const change = await run('ip addr add 100.64.255.250/32 dev eth0');
    assert.notEqual(change.code, 0);
    assert.match(change.stderr, /not permitted/i);
  });

  test('root inside is an unprivileged user on the host, in a range of its own above the ids disks store', async () => {
    const result = await run('id -u; cat /proc/self/uid_map; stat -c %u:%g /bin/busybox');
    const [uid, map, owner] = result.stdout.trim().split('\n');
    assert.equal(uid, '0');
    const [inside, host, size] = map!.trim().split(/\s+/).map(Number);
    assert.deepEqual([inside, size, host! % 65536], [0, 65536, 0]);
    assert.ok(host! >= 4 * 65536, `root is host uid ${host}`);
    // The disk stores the image's owners as they were built (root as 100000): the idmapped mount shows them as the sprite's.
    assert.equal(owner, '0:0');
  });

  test('mounting is denied', async () => {
    const result = await run('mkdir -p /mnt/x && mount -t tmpfs none /mnt/x');
    assert.notEqual(result.code, 0);
  });

  test('namespace escapes and kernel keyrings are denied by seccomp', async () => {
    const unshare = await run('unshare -n true');
    assert.notEqual(unshare.code, 0);
    assert.match(unshare.stderr, /Operation not permitted|Permission denied/);
  });

  test('no CAP_SYS_ADMIN and no_new_privs set', async () => {
    const result = await run('grep -E "^(CapEff|NoNewPrivs)" /proc/self/status');
    const capEff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(result.stdout)![1]}`);
    assert.equal((capEff >> CAP_SYS_ADMIN) & 1n, 0n);
    assert.match(result.stdout, /NoNewPrivs:\s+1/);
  });

  test('host processes, files and masked /proc paths are out of sight', async () => {
    const ps = await run('ps -o pid,comm');
    assert.doesNotMatch(ps.stdout, /node|runc|sprite-init/);
    const files = await run(`ls ${peer.dataDir} 2>&1; cat /proc/keys | wc -c`);
    assert.match(files.stdout, /No such file or directory/);
    assert.match(files.stdout, /^0$/m);
  });

  test('proc and sys paths are read-only', async () => {
    const result = await run('echo 1 > /proc/sys/kernel/domainname; echo "rc=$?"; touch /sys/x; echo "rc=$?"');
    assert.doesNotMatch(result.stdout, /rc=0/);
  });

  test('memory, cpu and pids limits are set on its cgroup', async () => {
    const peerKey = createHash('sha256').update(peer.dataDir).digest('hex').slice(0, 10);
    const base = `sprites/${peerKey}/${id}`;
    assert.equal((await readFile(`/sys/fs/cgroup/memory/${base}/memory.limit_in_bytes`, 'utf8')).trim(), String(1024 ** 3));
    assert.equal((await readFile(`/sys/fs/cgroup/pids/${base}/pids.max`, 'utf8')).trim(), '1024');
    assert.equal((await readFile(`/sys/fs/cgroup/cpu/${base}/cpu.cfs_quota_us`, 'utf8')).trim(), '100000');
  });

  test('the disk is a 100 GiB ext4 volume that keeps what is written', async () => {
    const result = await run('df -k / | tail -1; echo kept > /root/file; sync; cat /root/file');
    const sizeKb = Number(result.stdout.split('\n')[0]!.trim().split(/\s+/)[1]);
    assert.ok(sizeKb > 90 * 1024 * 1024, `disk is ${sizeKb} KiB`);
    assert.match(result.stdout, /kept/);
  });
});
