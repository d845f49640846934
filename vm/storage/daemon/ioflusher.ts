import { readFile, writeFile } from 'node:fs/promises';

/** prctl(2) option PR_SET_IO_FLUSHER (Linux 5.6+). */
const PR_SET_IO_FLUSHER = 57;
/** PF_MEMALLOC_NOIO in a task's flags (/proc/PID/stat field 9). */
const PF_MEMALLOC_NOIO = 0x00080000;
/** The prctl syscall number per architecture. */
const SYS_PRCTL: Partial<Record<NodeJS.Architecture, number>> = { x64: 157, arm64: 167 };

/**
 * The loop-over-FUSE reclaim deadlock, and what this module does about it.
 *
 * ext4's dirty pages are written back through the loop device to the FUSE file, i.e. to this
 * server. If the server, while handling that write, allocates memory and the kernel reclaims by
 * writing back dirty pages of the same filesystem, it waits on itself. PR_SET_IO_FLUSHER marks the
 * server's tasks PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE: its allocations never recurse into I/O and
 * its own writes are not throttled for other devices' dirty pages. Node cannot call prctl(2)
 * without a native addon, so the daemon is started by a tiny Perl helper (perl-base is Essential
 * in Debian) that calls prctl through syscall(2) and then execs Node; the flag is inherited by
 * every thread and survives execve. It needs CAP_SYS_RESOURCE; where that is missing (this
 * project's CI VM drops it from the bounding set) the helper still execs and the daemon reports
 * `ioFlusher: false`, relying on the remaining mitigations:
 * - the loop device uses direct I/O and the FUSE file FOPEN_DIRECT_IO, so neither the loop nor
 *   FUSE keeps page cache: ext4's pages are the only dirty pages in the chain;
 * - the daemon runs outside the sprites' memory cgroups, so a sprite at its memory limit reclaims
 *   in its own cgroup and waits on a server that is not itself limited;
 * - the daemon's oom_score_adj is lowered, so the OOM killer picks user processes first;
 * - the daemon's heap and queues are bounded (dirty-set backpressure, fixed reader buffers).
 */
export function ioFlusherCommand(argv: readonly string[]): { file: string; args: string[] } {
  const nr = SYS_PRCTL[process.arch];
  if (nr === undefined) return { file: argv[0]!, args: argv.slice(1) };
  const script = [
    `if (syscall(${nr}, ${PR_SET_IO_FLUSHER}, 1, 0, 0, 0) == 0) { $ENV{SPRITE_IO_FLUSHER} = "set" }`,
    'else { $ENV{SPRITE_IO_FLUSHER} = "unavailable: $!" }',
    'exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\\n";',
  ].join(' ');
  return { file: 'perl', args: ['-e', script, '--', ...argv] };
}

/** Whether this process runs with PR_SET_IO_FLUSHER (PF_MEMALLOC_NOIO set in its task flags). */
export async function ioFlusherActive(): Promise<boolean> {
  const stat = await readFile('/proc/self/stat', 'utf8').catch(() => '');
  // Fields after the command name (which may hold spaces): state ppid pgrp session tty tpgid flags.
  const flags = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[6] ?? 0);
  return (flags & PF_MEMALLOC_NOIO) !== 0;
}

/** Lowers this process's OOM score so the kernel kills user processes before the disk server. */
export async function protectFromOom(): Promise<void> {
  await writeFile('/proc/self/oom_score_adj', '-900').catch(() => undefined);
}
