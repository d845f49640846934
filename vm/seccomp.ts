/**
 * Syscalls a sprite must not make even as its own root: they would reach the host kernel's
 * global state (mounts, modules, kexec, keys, clocks, bpf) or break out of namespaces.
 * Everything else is allowed, so ordinary Linux software runs unchanged.
 */
export const DENIED_SYSCALLS = [
  'mount', 'umount', 'umount2', 'pivot_root', 'move_mount', 'open_tree', 'fsopen', 'fsconfig', 'fsmount', 'fspick',
  'mount_setattr', 'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module', 'bpf',
  'keyctl', 'add_key', 'request_key', 'reboot', 'swapon', 'swapoff', 'acct', 'settimeofday', 'clock_settime',
  'clock_adjtime', 'adjtimex', 'syslog', 'quotactl', 'quotactl_fd', 'lookup_dcookie', 'perf_event_open',
  'open_by_handle_at', 'name_to_handle_at', 'setns', 'unshare', 'userfaultfd', 'iopl', 'ioperm', 'vhangup',
  'nfsservctl', 'uselib', 'personality', 'create_module', 'get_kernel_syms', 'query_module', '_sysctl',
];

/** The OCI seccomp section: allow by default, deny the list above with EPERM. */
export function seccompProfile(): object {
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [{ names: DENIED_SYSCALLS, action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
  };
}
