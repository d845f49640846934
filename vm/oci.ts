import type { IdMap, PinnedNamespaces } from './namespaces.ts';
import { CHECKPOINTS_DIR, STAGE } from './init/config.ts';
import { seccompProfile } from './seccomp.ts';

/** Resource limits of one sprite's inner container. */
export interface Limits {
  /** Memory limit in bytes. @default VM_DEFAULTS.limits (1 GiB) */
  memoryBytes: number;
  /** CPU limit in cores (a CFS quota). @default VM_DEFAULTS.limits (1) */
  cpus: number;
  /** Maximum number of processes. @default VM_DEFAULTS.limits (1024) */
  pids: number;
}

/** Everything the OCI config of a sprite's inner container depends on. */
export interface ContainerSpec {
  namespaces: PinnedNamespaces;
  ids: IdMap;
  /** cgroup path, unique per peer and sprite. */
  cgroupPath: string;
  limits: Limits;
  /** Bind sprite-init's generated resolv.conf (the gateway as nameserver) over /etc/resolv.conf: the sprite has egress. */
  resolvConf?: boolean;
}

/** Default PATH inside a sprite. */
export const SPRITE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/.sprite/bin';

// Enough for a user's own root to manage files, processes and low ports, and nothing that reaches
// the host: no SYS_ADMIN, SYS_MODULE, SYS_PTRACE, NET_ADMIN, SYS_TIME, MKNOD.
const CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_AUDIT_WRITE',
];

/** Builds the OCI runtime config (runc's config.json) of a sprite's inner container. */
export function containerConfig(spec: ContainerSpec): object {
  const idMap = [{ containerID: 0, hostID: spec.ids.hostId, size: spec.ids.size }];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      // The container's pid 1 only waits; user programs come as exec and services.
      args: ['/bin/sh', '-c', 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done'],
      env: [`PATH=${SPRITE_PATH}`, 'HOME=/root', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: CAPABILITIES, effective: CAPABILITIES, permitted: CAPABILITIES },
      noNewPrivileges: true,
    },
    root: { path: STAGE.rootfs, readonly: false },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      // A fresh sysfs, not the host's: its net/ shows only the sprite's own network namespace (which
      // the sprite's user namespace owns, so the kernel allows the mount), and nothing of the host's
      // mounts under /sys comes along.
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      // With the cgroup namespace, each hierarchy mounted here has the sprite's own cgroup as its
      // root: no other sprite's cgroup or usage is in sight.
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
      { destination: '/.sprite', type: 'none', source: STAGE.spriteDir, options: ['rbind', 'nosuid', 'nodev'] },
      { destination: '/.sprite/bin', type: 'none', source: STAGE.toolsDir, options: ['rbind', 'ro', 'nosuid', 'nodev'] },
      // A slave of sprite-init's shared tmpfs: checkpoint mounts arrive here (see init/checkpoints.ts).
      { destination: CHECKPOINTS_DIR, type: 'none', source: STAGE.checkpoints, options: ['rbind', 'ro', 'nosuid', 'nodev', 'rslave'] },
      // Over the disk's own file, which may name a resolver the sprite cannot reach.
      ...(spec.resolvConf ? [{ destination: '/etc/resolv.conf', type: 'none', source: STAGE.resolvConf, options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'] }] : []),
    ],
    linux: {
      uidMappings: idMap,
      gidMappings: idMap,
      namespaces: [
        { type: 'pid' },
        { type: 'mount' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'cgroup' },
        { type: 'user', path: spec.namespaces.user },
        { type: 'network', path: spec.namespaces.net },
      ],
      cgroupsPath: spec.cgroupPath,
      resources: {
        memory: { limit: spec.limits.memoryBytes },
        cpu: { quota: Math.round(spec.limits.cpus * 100_000), period: 100_000 },
        pids: { limit: spec.limits.pids },
        devices: [{ allow: false, access: 'rwm' }, ...allowedDevices()],
      },
      devices: [],
      seccomp: seccompProfile(),
      maskedPaths: [
        '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
        '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

function allowedDevices(): object[] {
  // null, zero, full, random, urandom, tty, ptmx and ptys: runc creates the basic nodes itself.
  return [
    { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
    { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
    { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' },
    { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' },
    { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' },
    { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' },
    { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' },
    { allow: true, type: 'c', major: 136, access: 'rwm' },
  ];
}
