/**
 * The sprite's processes as sprite-init sees them in its /proc (pid 1 of the sprite's own pid
 * namespace, so only the sprite's processes are there): which one is whose child, and the pid the
 * container sees.
 */
import { readFileSync, readdirSync } from 'node:fs';

/** A process of the container (it has a pid in a namespace below sprite-init's) whose parent is `parent`; 0 if none. */
export function childInContainer(parent: number, inner?: number): number {
  for (const entry of safeReaddir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    let status: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      status = readFileSync(`/proc/${entry}/status`, 'utf8');
    } catch {
      continue;
    }
    // The parent pid is the second field after the command name, which may itself hold spaces and ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const pids = /^NSpid:\s+(.+)$/m.exec(status)?.[1]!.trim().split(/\s+/) ?? [];
    if (ppid === parent && pids.length > 1 && (inner === undefined || Number(pids.at(-1)) === inner)) return Number(entry);
  }
  return 0;
}

function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
