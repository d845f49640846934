import { spawn } from 'node:child_process';
import { mkdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './command.ts';
import { unmountPath } from './volume.ts';

/** Paths of a sprite's pinned user and network namespaces. */
export interface PinnedNamespaces {
  user: string;
  net: string;
}

/** Range of host ids that a sprite's uid 0..65535 map to. */
export interface IdMap {
  /** Host id of the sprite's root. */
  hostId: number;
  /** Number of ids mapped. */
  size: number;
}

/**
 * Creates a user namespace (root remapped to `ids.hostId`) and a network namespace owned by it,
 * pinned by bind mounts under `dir`, with loopback up and nothing else.
 *
 * Why pinned and why together: sprite-init lives in this network namespace and the inner
 * container joins both. runc exec joins the container's user namespace before its network
 * namespace, which the kernel allows only when that user namespace owns the network namespace.
 */
export async function pinNamespaces(dir: string, ids: IdMap): Promise<PinnedNamespaces> {
  await mkdir(dir, { recursive: true });
  const pinned = { user: join(dir, 'user'), net: join(dir, 'net') };
  await writeFile(pinned.user, '');
  await writeFile(pinned.net, '');
  // A short-lived holder process creates both namespaces; the peer (root on the host) writes the
  // id maps and bind-mounts the namespaces, which keeps them alive after the holder exits.
  const holder = spawn('unshare', ['--user', '--net', '--', 'sleep', '30'], { stdio: 'ignore' });
  try {
    const pid = holder.pid;
    if (pid === undefined) throw new Error('cannot start unshare');
    await waitForOwnUserNamespace(pid);
    const map = `0 ${ids.hostId} ${ids.size}\n`;
    await writeFile(`/proc/${pid}/uid_map`, map);
    await writeFile(`/proc/${pid}/gid_map`, map);
    await runCommand('mount', ['--bind', `/proc/${pid}/ns/user`, pinned.user]);
    await runCommand('mount', ['--bind', `/proc/${pid}/ns/net`, pinned.net]);
    await runCommand('nsenter', [`--net=${pinned.net}`, 'ip', 'link', 'set', 'lo', 'up']);
  } catch (error) {
    await releaseNamespaces(pinned);
    throw error;
  } finally {
    holder.kill('SIGKILL');
  }
  return pinned;
}

async function waitForOwnUserNamespace(pid: number): Promise<void> {
  const ours = await readlink('/proc/self/ns/user');
  for (let attempt = 0; attempt < 2000; attempt++) {
    const theirs = await readlink(`/proc/${pid}/ns/user`).catch(() => ours);
    if (theirs !== ours) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  throw new Error('unshare did not create a user namespace');
}

/** Unpins the namespaces; the kernel frees them once no process uses them. */
export async function releaseNamespaces(pinned: PinnedNamespaces): Promise<void> {
  await unmountPath(pinned.net);
  await unmountPath(pinned.user);
}
