/**
 * The seccomp filter of a sprite: an allowlist, at least as strict as Docker's default profile.
 * A syscall not named here fails with EPERM. What ordinary Linux software needs is allowed; what
 * reaches the host kernel's global state (mounts, modules, kexec, keys, clocks, bpf, perf, swap)
 * or opens new kernel surface to the sprite's root (new namespaces, io_uring, userfaultfd) is not.
 *
 * Three calls are allowed only in part:
 * - `clone` only without namespace flags: a nested user namespace would hand the sprite's root a
 *   full capability set over fresh network and mount namespaces (the way to nf_tables and friends);
 * - `clone3` answers ENOSYS, not EPERM, so glibc falls back to `clone`, whose flags the filter can
 *   read (clone3 passes them in memory, out of seccomp's sight);
 * - `personality` only for the handful of personas programs ask for, and `socket` never for vsock.
 *
 * Syscalls this runc's libseccomp does not know are skipped by runc and then answer ENOSYS.
 */

/** Files, directories, extended attributes, file descriptors and polling. */
const FILES = [
  'access', 'faccessat', 'faccessat2', 'open', 'openat', 'openat2', 'creat', 'close', 'close_range', 'read', 'readv', 'pread64',
  'preadv', 'preadv2', 'write', 'writev', 'pwrite64', 'pwritev', 'pwritev2', 'lseek', '_llseek', 'stat', 'stat64', 'lstat',
  'lstat64', 'fstat', 'fstat64', 'fstatat64', 'newfstatat', 'statx', 'statfs', 'statfs64', 'fstatfs', 'fstatfs64', 'truncate',
  'truncate64', 'ftruncate', 'ftruncate64', 'fallocate', 'fadvise64', 'fadvise64_64', 'readahead', 'fsync', 'fdatasync',
  'sync', 'syncfs', 'sync_file_range', 'mkdir', 'mkdirat', 'rmdir', 'rename', 'renameat', 'renameat2', 'link', 'linkat',
  'unlink', 'unlinkat', 'symlink', 'symlinkat', 'readlink', 'readlinkat', 'mknod', 'mknodat', 'chdir', 'fchdir', 'getcwd',
  'chmod', 'fchmod', 'fchmodat', 'fchmodat2', 'chown', 'chown32', 'fchown', 'fchown32', 'fchownat', 'lchown', 'lchown32',
  'umask', 'utime', 'utimes', 'utimensat', 'utimensat_time64', 'futimesat', 'getdents', 'getdents64', 'getxattr', 'lgetxattr',
  'fgetxattr', 'setxattr', 'lsetxattr', 'fsetxattr', 'listxattr', 'llistxattr', 'flistxattr', 'removexattr', 'lremovexattr',
  'fremovexattr', 'flock', 'fcntl', 'fcntl64', 'dup', 'dup2', 'dup3', 'pipe', 'pipe2', 'splice', 'tee', 'vmsplice',
  'sendfile', 'sendfile64', 'copy_file_range', 'ioctl', 'cachestat', 'inotify_init', 'inotify_init1', 'inotify_add_watch',
  'inotify_rm_watch', 'fanotify_mark', 'select', '_newselect', 'pselect6', 'pselect6_time64', 'poll', 'ppoll', 'ppoll_time64',
  'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_ctl_old', 'epoll_wait', 'epoll_wait_old', 'epoll_pwait', 'epoll_pwait2',
  'eventfd', 'eventfd2', 'signalfd', 'signalfd4', 'timerfd_create', 'timerfd_settime', 'timerfd_settime64', 'timerfd_gettime',
  'timerfd_gettime64', 'memfd_create', 'memfd_secret', 'chroot',
  // Linux AIO (io_setup...) is an old, small interface; io_uring is not here.
  'io_setup', 'io_destroy', 'io_submit', 'io_cancel', 'io_getevents', 'io_pgetevents', 'io_pgetevents_time64',
];

/** Memory. */
const MEMORY = [
  'brk', 'mmap', 'mmap2', 'munmap', 'mremap', 'mprotect', 'madvise', 'mincore', 'msync', 'mlock', 'mlock2', 'mlockall', 'munlock',
  'munlockall', 'remap_file_pages', 'membarrier', 'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'map_shadow_stack',
];

/** Processes, threads, credentials, scheduling and limits (inside the sprite's own namespaces). */
const PROCESSES = [
  'execve', 'execveat', 'fork', 'vfork', 'exit', 'exit_group', 'wait4', 'waitid', 'waitpid', 'getpid', 'getppid', 'gettid',
  'getpgid', 'setpgid', 'getpgrp', 'getsid', 'setsid', 'getuid', 'getuid32', 'geteuid', 'geteuid32', 'getgid', 'getgid32',
  'getegid', 'getegid32', 'getresuid', 'getresuid32', 'getresgid', 'getresgid32', 'getgroups', 'getgroups32', 'setuid',
  'setuid32', 'setgid', 'setgid32', 'setreuid', 'setreuid32', 'setregid', 'setregid32', 'setresuid', 'setresuid32', 'setresgid',
  'setresgid32', 'setfsuid', 'setfsuid32', 'setfsgid', 'setfsgid32', 'setgroups', 'setgroups32', 'capget', 'capset', 'prctl',
  'arch_prctl', 'seccomp', 'getpriority', 'setpriority', 'ioprio_get', 'ioprio_set', 'sched_yield', 'sched_getaffinity',
  'sched_setaffinity', 'sched_getattr', 'sched_setattr', 'sched_getparam', 'sched_setparam', 'sched_getscheduler',
  'sched_setscheduler', 'sched_get_priority_max', 'sched_get_priority_min', 'sched_rr_get_interval',
  'sched_rr_get_interval_time64', 'getrlimit', 'ugetrlimit', 'setrlimit', 'prlimit64', 'getrusage', 'times', 'getcpu', 'uname',
  'sysinfo', 'getrandom', 'set_tid_address', 'set_robust_list', 'get_robust_list', 'rseq', 'futex', 'futex_time64',
  'futex_waitv', 'futex_wake', 'futex_wait', 'futex_requeue', 'get_thread_area', 'set_thread_area', 'modify_ldt',
  'pidfd_open', 'pidfd_send_signal', 'process_mrelease', 'landlock_create_ruleset', 'landlock_add_rule',
  'landlock_restrict_self', 'restart_syscall',
  // Tracing the sprite's own processes (debuggers, strace): others are not in its pid namespace.
  'ptrace', 'process_vm_readv', 'process_vm_writev',
];

/** Signals and timers. */
const SIGNALS_AND_TIME = [
  'kill', 'tkill', 'tgkill', 'rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'rt_sigpending', 'rt_sigsuspend',
  'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_sigqueueinfo', 'rt_tgsigqueueinfo', 'sigaltstack', 'sigprocmask',
  'sigreturn', 'pause', 'alarm', 'getitimer', 'setitimer', 'timer_create', 'timer_delete', 'timer_getoverrun',
  'timer_gettime', 'timer_gettime64', 'timer_settime', 'timer_settime64', 'nanosleep', 'clock_nanosleep',
  'clock_nanosleep_time64', 'clock_gettime', 'clock_gettime64', 'clock_getres', 'clock_getres_time64', 'gettimeofday', 'time',
];

/** Sockets (their families are checked below) and System V / POSIX IPC. */
const NETWORK_AND_IPC = [
  'socketpair', 'bind', 'listen', 'accept', 'accept4', 'connect', 'getsockname', 'getpeername', 'getsockopt', 'setsockopt',
  'send', 'sendto', 'sendmsg', 'sendmmsg', 'recv', 'recvfrom', 'recvmsg', 'recvmmsg', 'recvmmsg_time64', 'shutdown', 'socketcall',
  'ipc', 'shmget', 'shmat', 'shmdt', 'shmctl', 'semget', 'semop', 'semctl', 'semtimedop', 'semtimedop_time64', 'msgget', 'msgsnd',
  'msgrcv', 'msgctl', 'mq_open', 'mq_unlink', 'mq_timedsend', 'mq_timedsend_time64', 'mq_timedreceive',
  'mq_timedreceive_time64', 'mq_notify', 'mq_getsetattr',
];

/** Every syscall a sprite may make without conditions. */
export const ALLOWED_SYSCALLS: readonly string[] = [...FILES, ...MEMORY, ...PROCESSES, ...SIGNALS_AND_TIME, ...NETWORK_AND_IPC];

/** clone's namespace flags: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET. */
export const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;

// PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32 and the query (0xffffffff).
const PERSONAS = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];
const AF_VSOCK = 40;
const EPERM = 1;
const ENOSYS = 38;

/** The OCI seccomp section: EPERM unless allowed above. */
export function seccompProfile(): object {
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [
      { names: ALLOWED_SYSCALLS, action: 'SCMP_ACT_ALLOW' },
      // (flags & CLONE_NAMESPACE_FLAGS) == 0; clone's flags are its first argument on x86.
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
      ...PERSONAS.map((persona) => ({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: persona, op: 'SCMP_CMP_EQ' }] })),
      { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_NE' }] },
    ],
  };
}
