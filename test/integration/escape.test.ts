// The escape suite: from inside a sprite with a Debian userland (the host's Debian perl, dash and
// libc), every door out to the host kernel or to other sprites is tried and must stay shut.
// docs/security/sandbox.md maps each finding to the case here that holds it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ESCAPE_PROBE, probeResults } from '../helpers/escape-probe.ts';
import { removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

const EPERM = '1';
const ENOSYS = '38';

/** Syscalls the seccomp filter itself refuses (EPERM), whatever the capabilities would allow. */
const FILTERED = [
  'unshare_newuser', 'unshare_newnet', 'unshare_newns', 'unshare_newpid', 'unshare_newuts', 'unshare_newipc', 'unshare_newcgroup',
  'unshare_newuser_newnet', 'clone_newuser_newnet', 'clone_newns', 'setns_net', 'io_uring_setup', 'io_uring_register',
  'mount_tmpfs', 'umount_proc', 'fsopen', 'open_tree', 'pivot_root', 'init_module', 'finit_module', 'delete_module',
  'kexec_load', 'kexec_file_load', 'bpf_map_create', 'perf_event_open', 'userfaultfd', 'keyctl_session', 'add_key',
  'request_key', 'socket_vsock', 'clock_settime', 'settimeofday', 'reboot', 'swapon', 'iopl', 'acct', 'syslog_read_all',
  'vhangup', 'sethostname', 'open_by_handle_at', 'personality_no_randomize',
];
/** Refused by capabilities, read-only mounts or the pid namespace rather than the filter: any error will do. */
const REFUSED = [
  'socket_packet_raw', 'socket_inet_raw_icmp', 'socket_inet_raw', 'mknod_block', 'write_sysrq_trigger', 'write_proc_sys',
  'write_sys_kernel', 'write_sys_uevent_helper', 'write_own_memory_limit', 'mkdir_cgroup', 'ptrace_host_pid', 'kill_host_pid',
  'pidfd_open_host_pid',
];

/** A root with the host's Debian perl and dash and the libraries they load; busybox in /.sprite/bin fills the rest. */
async function debianRoot(root: string): Promise<void> {
  for (const dir of ['usr/bin', 'usr/lib', 'usr/lib64', 'etc']) await mkdir(join(root, dir), { recursive: true });
  for (const [link, target] of [['bin', 'usr/bin'], ['lib', 'usr/lib'], ['lib64', 'usr/lib64'], ['sbin', 'usr/bin']] as const) await symlink(target, join(root, link));
  const files = new Set(['/usr/bin/perl', '/usr/bin/dash', '/etc/debian_version', '/etc/os-release']);
  for (const binary of ['/usr/bin/perl', '/usr/bin/dash']) {
    for (const match of execFileSync('ldd', [binary], { encoding: 'utf8' }).matchAll(/(\/\S+) \(0x/g)) files.add(match[1]!);
  }
  for (const file of files) {
    // /lib and /lib64 are links into /usr on the host; the copy keeps the path a program asks for.
    const inside = file.replace(/^\/(lib|lib64|bin)\//, '/usr/$1/');
    await mkdir(join(root, dirname(inside)), { recursive: true });
    await copyFile(file, join(root, inside));
  }
  await symlink('dash', join(root, 'usr/bin/sh'));
}

/** The cgroup (memory controller) a host process is in, from /proc. */
async function memoryCgroup(pid: number): Promise<string> {
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n');
  return lines.find((line) => /:memory:/.test(line))?.split(':')[2] ?? '';
}

describe('a sprite cannot escape to the host kernel or other sprites', () => {
  let peer: PeerProcess;
  let scratch: string;
  let id: string;
  let otherId: string;
  const run = async (script: string, name = 'deb') => {
    const result = await peer.cli(['exec', name, '--', 'sh', '-c', script]);
    assert.equal(result.code, 0, `${script}: ${result.stderr}`);
    return result.stdout;
  };

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'sprite-escape-'));
    peer = await startPeer({ poolDepth: 1 });
    await debianRoot(join(scratch, 'root'));
    const image = await peer.api('POST', '/v1/images', { name: 'debian-perl', from: 'dir', path: join(scratch, 'root') });
    assert.equal(image.status, 201, JSON.stringify(image.body));
    const created = await peer.api('POST', '/v1/sprites', { name: 'deb', image: 'debian-perl' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    id = created.body.id;
    const other = await peer.api('POST', '/v1/sprites', { name: 'other' });
    assert.equal(other.status, 201, JSON.stringify(other.body));
    otherId = other.body.id;
  });
  after(async () => {
    await peer?.stop();
    if (peer) await removeDataDir(peer.dataDir);
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test('every syscall probe fails, clone3 with ENOSYS, while fork, sockets and the persona query still work', async (t) => {
    assert.match(await run('cat /etc/debian_version'), /^\d+/);
    const result = await peer.cli(['exec', 'deb', '--', 'perl', '-e', ESCAPE_PROBE, String(peer.process.pid)]);
    assert.equal(result.code, 0, result.stderr);
    const seen = probeResults(result.stdout);
    t.diagnostic(`open: ${[...seen].filter(([, value]) => value === 'ok').map(([name]) => name).join(' ')}`);
    for (const control of ['control_fork', 'control_tcp_socket', 'control_personality_query']) assert.equal(seen.get(control), 'ok', control);
    for (const name of ['clone3_plain', 'clone3_newuser']) assert.equal(seen.get(name), ENOSYS, name);
    for (const name of FILTERED) assert.equal(seen.get(name), EPERM, name);
    for (const name of REFUSED) assert.match(seen.get(name) ?? 'missing', /^\d+$/, name);
    assert.equal(seen.size, 3 + 2 + FILTERED.length + REFUSED.length, result.stdout);
  });

  test("the sprite sees its own cgroup as the root of each hierarchy, and no other sprite's", async () => {
    const own = await run('cat /proc/self/cgroup');
    for (const line of own.trim().split('\n')) assert.match(line, /:\/$/, line);
    assert.equal((await run('cat /sys/fs/cgroup/memory/memory.limit_in_bytes')).trim(), String(1024 ** 3));
    const listing = await run('find /sys/fs/cgroup /sys -maxdepth 6 2>/dev/null | grep -E "sprites|[0-9a-f]{10}" || true');
    assert.doesNotMatch(listing, new RegExp(`${otherId}|${id}|sprites`));
  });

  test("its /sys is its own: its network namespace's devices, no host mounts under it, firmware masked", async () => {
    const net = (await run('ls /sys/class/net')).trim().split(/\s+/);
    for (const device of net) assert.ok(['lo', 'eth0'].includes(device), `host device ${device} visible`);
    // Each mount point under /sys with its filesystem type (the field after the separator).
    const mounts = await run('awk \'$5 ~ /^\\/sys/ { i = 7; while ($i != "-") i++; print $5, $(i + 1) }\' /proc/self/mountinfo');
    for (const line of mounts.trim().split('\n')) assert.match(line, /^\/sys(\/fs\/cgroup(\/\w+)?|\/firmware|\/devices\/virtual\/powercap)? (sysfs|tmpfs|cgroup)$/, line);
    assert.equal(await run('ls -A /sys/firmware'), '');
  });

  test("each sprite's root is a host uid range of its own, while its disk keeps the ids it stores", async () => {
    const ranges = [];
    for (const name of ['deb', 'other']) {
      const [inside, host, size] = (await run('cat /proc/self/uid_map', name)).trim().split(/\s+/).map(Number);
      assert.deepEqual([inside, size], [0, 65536]);
      ranges.push(host!);
    }
    assert.ok(Math.abs(ranges[0]! - ranges[1]!) >= 65536, `ranges ${ranges.join(', ')} overlap`);
    assert.equal(await run('stat -c %u:%g /usr/bin/perl; touch /root/made-inside; chown 1000:1000 /root/made-inside; stat -c %u:%g /root/made-inside'), '0:0\n1000:1000\n');
    // On the host the disk holds the ids images are built with (root as 100000), whatever range the sprite runs in.
    const stored = await stat(join(peer.dataDir, 'sprites', id, 'rootfs', 'root', 'made-inside'));
    assert.deepEqual([stored.uid, stored.gid], [101000, 101000]);
  });

  test("a service's processes, and the runc exec that supervises it, count against the sprite's cgroup", async () => {
    const created = await peer.cli(['services', 'create', 'deb', 'sleeper', '--', 'sleep', '86401']);
    assert.equal(created.code, 0, created.stderr);
    const service = await findProcess((cmdline) => cmdline === 'sleep\u000086401\u0000');
    const parent = Number(/^PPid:\s+(\d+)/m.exec(await readFile(`/proc/${service}/status`, 'utf8'))![1]);
    assert.match(await readFile(`/proc/${parent}/cmdline`, 'utf8'), /^runc\u0000/);
    for (const pid of [service, parent]) assert.match(await memoryCgroup(pid), new RegExp(`/${id}$`), `pid ${pid}`);
    // The service runs as the sprite's root, which is its own host uid.
    const hostUid = Number(/^Uid:\s+(\d+)/m.exec(await readFile(`/proc/${service}/status`, 'utf8'))![1]);
    assert.equal(String(hostUid), (await run('cat /proc/self/uid_map')).trim().split(/\s+/)[1]);
    const pids = (await readFile(`/proc/${parent}/cgroup`, 'utf8')).split('\n').find((line) => /:pids:/.test(line)) ?? '';
    assert.match(pids, new RegExp(`/${id}$`));
  });
});

/** A host process whose command line matches, looked for in /proc. */
async function findProcess(matches: (cmdline: string) => boolean): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
      if (matches(cmdline)) return Number(entry);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('no such process');
}
