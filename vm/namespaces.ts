import { spawn } from 'node:child_process';
import { mkdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './command.ts';
import { unmountPath } from './volume.ts';

/** Paths of a sprite's pinned user and network namespaces. */
export interface PinnedNamespaces {
  user: string;
  net: string;
  /** A user namespace mapping the ids the disk stores onto the sprite's range, for idmapped mounts; absent when they are the same. */
  idmap?: string;
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
 * pinned by bind mounts under `dir`, with loopback up and nothing else; and, when the disk stores
 * the sprite's root as another id (`storedRootId`), a user namespace for its idmapped mounts.
 *
 * Why pinned and why together: sprite-init lives in this network namespace and the inner
 * container joins both. runc exec joins the container's user namespace before its network
 * namespace, which the kernel allows only when that user namespace owns the network namespace.
 */
export async function pinNamespaces(dir: string, ids: IdMap, storedRootId = ids.hostId): Promise<PinnedNamespaces> {
  await mkdir(dir, { recursive: true });
  const pinned: PinnedNamespaces = { user: join(dir, 'user'), net: join(dir, 'net') };
  if (storedRootId !== ids.hostId) pinned.idmap = join(dir, 'idmap');
  try {
    await pinHeld(['--user', '--net'], `0 ${ids.hostId} ${ids.size}\n`, { user: pinned.user, net: pinned.net });
    await runCommand('nsenter', [`--net=${pinned.net}`, 'ip', 'link', 'set', 'lo', 'up']);
    // Only a map, never entered: stored id s shows as ids.hostId + (s - storedRootId).
    if (pinned.idmap) await pinHeld(['--user'], `${storedRootId} ${ids.hostId} ${ids.size}\n`, { user: pinned.idmap });
  } catch (error) {
    await releaseNamespaces(pinned);
    throw error;
  }
  return pinned;
}

/**
 * A short-lived holder process creates the namespaces; the peer (root on the host) writes the id
 * maps and bind-mounts the namespaces at `paths`, which keeps them alive after the holder exits.
 */
async function pinHeld(flags: string[], map: string, paths: { user: string; net?: string }): Promise<void> {
  const holder = spawn('unshare', [...flags, '--', 'sleep', '30'], { stdio: 'ignore' });
  try {
    const pid = holder.pid;
    if (pid === undefined) throw new Error('cannot start unshare');
    await waitForOwnUserNamespace(pid);
    await writeFile(`/proc/${pid}/uid_map`, map);
    await writeFile(`/proc/${pid}/gid_map`, map);
    for (const [kind, path] of Object.entries(paths)) {
      await writeFile(path, '');
      await runCommand('mount', ['--bind', `/proc/${pid}/ns/${kind}`, path]);
    }
  } finally {
    holder.kill('SIGKILL');
  }
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
  if (pinned.idmap) await unmountPath(pinned.idmap);
}
