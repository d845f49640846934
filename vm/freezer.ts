import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { VmError } from './errors.ts';

const FREEZER_ROOT = '/sys/fs/cgroup/freezer';

/** What the cgroup v1 freezer of a cgroup can be set to. */
export type FreezerState = 'FROZEN' | 'THAWED';

/**
 * Sets a cgroup's v1 freezer and waits until the kernel reports it. Freezing passes through
 * FREEZING while a task sits in the kernel (a FUSE read of the sprite's own disk, for one): the
 * write is repeated until every task has stopped, or ERR_SANDBOX_FREEZE after `timeoutMs`.
 * Memory, open files and sockets stay as they are; only scheduling stops.
 */
export async function setFreezer(cgroupPath: string, state: FreezerState, timeoutMs = 10_000): Promise<void> {
  const file = join(FREEZER_ROOT, cgroupPath, 'freezer.state');
  const deadline = performance.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    await writeFile(file, state);
    if ((await readFile(file, 'utf8')).trim() === state) return;
    if (performance.now() > deadline) throw new VmError('ERR_SANDBOX_FREEZE', `cgroup ${cgroupPath} did not reach ${state} within ${timeoutMs} ms`);
    await sleep(delay);
  }
}

/** Thaws a cgroup if it exists and is frozen: a frozen task cannot die, so cleanup thaws first. */
export async function thawIfFrozen(cgroupPath: string): Promise<void> {
  const file = join(FREEZER_ROOT, cgroupPath, 'freezer.state');
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current !== undefined && current.trim() !== 'THAWED') await writeFile(file, 'THAWED').catch(() => undefined);
}

/**
 * Thaws a cgroup and every cgroup below it. A peer killed while sprites slept leaves their tasks
 * frozen, unkillable and holding their disks' mounts; the next start thaws them so they can die.
 */
export async function thawTree(cgroupPath: string): Promise<void> {
  await thawIfFrozen(cgroupPath);
  const entries = await readdir(join(FREEZER_ROOT, cgroupPath), { withFileTypes: true }).catch(() => []);
  for (const entry of entries) if (entry.isDirectory()) await thawTree(join(cgroupPath, entry.name));
}
