import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { claimIds, ID_RANGE } from '../../vm/idmap.ts';
import { cgroupProcsFiles, inCgroup } from '../../vm/init/cgroup.ts';
import { ALLOWED_SYSCALLS, CLONE_NAMESPACE_FLAGS, seccompProfile } from '../../vm/seccomp.ts';

interface Rule { names: string[]; action: string; errnoRet?: number; args?: Array<{ index: number; value: number; valueTwo?: number; op: string }> }

test('the seccomp profile refuses by default and allows none of the calls that reach the host kernel', () => {
  const profile = seccompProfile() as { defaultAction: string; defaultErrnoRet: number; syscalls: Rule[] };
  assert.equal(profile.defaultAction, 'SCMP_ACT_ERRNO');
  assert.equal(profile.defaultErrnoRet, 1);
  const refused = ['unshare', 'setns', 'mount', 'umount2', 'pivot_root', 'fsopen', 'open_tree', 'move_mount', 'mount_setattr',
    'init_module', 'finit_module', 'delete_module', 'kexec_load', 'kexec_file_load', 'bpf', 'perf_event_open', 'userfaultfd',
    'keyctl', 'add_key', 'request_key', 'io_uring_setup', 'io_uring_enter', 'io_uring_register', 'reboot', 'swapon', 'swapoff',
    'settimeofday', 'clock_settime', 'adjtimex', 'syslog', 'acct', 'iopl', 'ioperm', 'open_by_handle_at', 'sethostname',
    'setdomainname', 'quotactl', 'lookup_dcookie', 'vhangup', 'kcmp', 'pidfd_getfd', 'fanotify_init', 'mbind', 'set_mempolicy'];
  const allowedAnyhow = new Set(profile.syscalls.filter((rule) => rule.action === 'SCMP_ACT_ALLOW' && !rule.args).flatMap((rule) => rule.names));
  for (const name of refused) assert.ok(!allowedAnyhow.has(name), `${name} is allowed`);
  assert.equal(new Set(ALLOWED_SYSCALLS).size, ALLOWED_SYSCALLS.length, 'a syscall is listed twice');
  // clone only when no namespace flag is set; clone3 answers ENOSYS (glibc then uses clone).
  const clone = profile.syscalls.filter((rule) => rule.names.includes('clone'));
  assert.deepEqual(clone.map((rule) => rule.args), [[{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]]);
  assert.equal(CLONE_NAMESPACE_FLAGS, 0x7e020000);
  const clone3 = profile.syscalls.filter((rule) => rule.names.includes('clone3'));
  assert.deepEqual(clone3.map((rule) => [rule.action, rule.errnoRet]), [['SCMP_ACT_ERRNO', 38]]);
  for (const rule of profile.syscalls.filter((r) => r.names.includes('personality') || r.names.includes('socket'))) assert.equal(rule.args?.length, 1);
});

test('a command started through inCgroup joins each cgroup.procs file before it runs', async () => {
  const root = await mkdtemp(join(tmpdir(), 'sprite-cgroup-'));
  try {
    // Two v1 hierarchies, one reached twice through a link, and one without the container's cgroup.
    for (const controller of ['memory', 'cpu,cpuacct', 'blkio']) await mkdir(join(root, controller), { recursive: true });
    for (const controller of ['memory', 'cpu,cpuacct']) {
      await mkdir(join(root, controller, 'sprites/p/c'), { recursive: true });
      await writeFile(join(root, controller, 'sprites/p/c/cgroup.procs'), '');
    }
    await symlink('cpu,cpuacct', join(root, 'cpu'));
    const files = cgroupProcsFiles('/sprites/p/c', root);
    assert.deepEqual(files.sort(), [join(root, 'cpu,cpuacct/sprites/p/c/cgroup.procs'), join(root, 'memory/sprites/p/c/cgroup.procs')]);
    const command = inCgroup(files, 'sh', ['-c', 'echo $$']);
    const pid = execFileSync(command.file, command.args, { encoding: 'utf8' }).trim();
    // The pid written is the command's own: the shell execs it.
    for (const file of files) assert.equal((await readFile(file, 'utf8')).trim(), pid);
    assert.deepEqual(inCgroup([], 'runc', ['exec']), { file: 'runc', args: ['exec'] });
    const failing = inCgroup([join(root, 'gone/cgroup.procs')], 'true', []);
    assert.throws(() => execFileSync(failing.file, failing.args, { stdio: 'ignore' }), (error: { status?: number }) => error.status === 125);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('host id ranges: one claim per slot, released on demand, a dead claimer\'s slot taken over', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sprite-ids-'));
  try {
    const first = await claimIds(dir, () => 7);
    assert.equal(first.hostId, 7 * ID_RANGE);
    assert.equal(await readFile(join(dir, '7'), 'utf8'), String(process.pid));
    // A live claim is never shared.
    await assert.rejects(claimIds(dir, () => 7), /no free host id range/);
    let slot = 6;
    const second = await claimIds(dir, () => slot++);
    assert.equal(second.hostId, 6 * ID_RANGE);
    await first.release();
    assert.equal((await claimIds(dir, () => 7)).hostId, 7 * ID_RANGE);
    // A claim left by a process that is gone (a killed peer) is taken over.
    const gone = spawnSync('true').pid!;
    await writeFile(join(dir, '9'), String(gone));
    const taken = await claimIds(dir, () => 9);
    assert.equal(taken.hostId, 9 * ID_RANGE);
    assert.equal(await readFile(join(dir, '9'), 'utf8'), String(process.pid));
    assert.deepEqual((await readdir(dir)).sort(), ['6', '7', '9']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
