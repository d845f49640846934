/**
 * Puts the host-side `runc exec` processes that sprite-init starts (services, terminals, the sprite
 * agents) into the container's own cgroup: they live as long as what they run, so their memory and
 * pids count against the sprite's limits, not the peer's. runc places the command itself there;
 * its parent it leaves where it was started.
 *
 * A small shell joins the cgroup and then execs runc, so runc's memory is charged to the sprite
 * from its first page (cgroup v1 does not move charges with a task that moves later) and the pid
 * sprite-init holds is runc's.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';

const CGROUP_ROOT = '/sys/fs/cgroup';
// Writes its own pid to each file given (their count first), then execs the rest.
const JOIN = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; n=$((n - 1)); shift; done; exec "$@"';

/** The `cgroup.procs` files of `cgroupPath` in every hierarchy that has it (each v1 controller, or the v2 tree). */
export function cgroupProcsFiles(cgroupPath: string, root = CGROUP_ROOT): string[] {
  const files = new Set<string>();
  let entries: string[] = [];
  try {
    entries = readdirSync(root);
  } catch {
    return [];
  }
  for (const dir of [root, ...entries.map((entry) => join(root, entry))]) {
    const file = join(dir, cgroupPath, 'cgroup.procs');
    // cpu and cpuacct may be links to one hierarchy: each file once.
    if (existsSync(file)) files.add(realpathSync(file));
  }
  return [...files];
}

/** The cgroup path runc was given for the container in `bundle`. */
export function bundleCgroupPath(bundle: string): string {
  const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { linux?: { cgroupsPath?: unknown } };
  const path = config.linux?.cgroupsPath;
  if (typeof path !== 'string' || !path.startsWith('/') || path.split('/').includes('..')) throw new Error(`bad cgroupsPath in ${bundle}`);
  return path;
}

/** `command args` started inside the cgroups whose `cgroup.procs` files are `files`, as a program and its arguments. */
export function inCgroup(files: string[], command: string, args: string[]): { file: string; args: string[] } {
  if (files.length === 0) return { file: command, args };
  return { file: '/bin/sh', args: ['-c', JOIN, 'sh', String(files.length), ...files, command, ...args] };
}
