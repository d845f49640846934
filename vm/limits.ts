import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Limits } from './oci.ts';

const CGROUP_ROOT = '/sys/fs/cgroup';
/** The CFS period the container config sets (100 ms); quotas are in its microseconds. */
const CFS_PERIOD_US = 100_000;

/**
 * Sets the memory and CPU limits of a created container's v1 cgroups, so a sandbox prepared with
 * the peer's limits (a warm pool entry) can run a sprite with its own. The pids limit is left as is.
 */
export async function setLimits(cgroupPath: string, limits: Pick<Limits, 'memoryBytes' | 'cpus'>): Promise<void> {
  const memory = join(CGROUP_ROOT, 'memory', cgroupPath);
  const swap = join(memory, 'memory.memsw.limit_in_bytes');
  // The kernel refuses a memory limit above the memory + swap limit: raise that first when it is set lower.
  const swapLimit = Number((await readFile(swap, 'utf8').catch(() => '')).trim());
  const raiseSwap = Number.isFinite(swapLimit) && swapLimit > 0 && swapLimit < limits.memoryBytes;
  if (raiseSwap) await writeFile(swap, String(limits.memoryBytes));
  await writeFile(join(memory, 'memory.limit_in_bytes'), String(limits.memoryBytes));
  const quota = Math.max(1000, Math.round(limits.cpus * CFS_PERIOD_US));
  await writeFile(join(CGROUP_ROOT, 'cpu', cgroupPath, 'cpu.cfs_quota_us'), String(quota));
}
