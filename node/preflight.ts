import { access, constants } from 'node:fs/promises';

const REQUIRED_COMMANDS = ['runc', 'unshare', 'nsenter', 'setpriv', 'mount', 'umount', 'mkfs.ext4', 'ip', 'truncate', 'cp', 'chown', 'perl'];

/** Fails start-up with one clear message when the host cannot run sprites. */
export async function checkHost(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the peer must run as root (it creates namespaces, mounts and cgroups)');
  const missing = await missingCommands(REQUIRED_COMMANDS);
  if (!(await exists('/bin/busybox'))) missing.push('/bin/busybox (busybox-static)');
  if (missing.length > 0) throw new Error(`missing on this host: ${missing.join(', ')}; run scripts/setup.sh`);
}

/** The commands of `commands` not found on PATH (nor in /usr/sbin, /sbin). */
export async function missingCommands(commands: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const command of commands) if (!(await onPath(command))) missing.push(command);
  return missing;
}

async function onPath(command: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (dir && (await exists(`${dir}/${command}`, constants.X_OK))) return true;
  }
  return false;
}

async function exists(path: string, mode = constants.F_OK): Promise<boolean> {
  try {
    await access(path, mode);
    return true;
  } catch {
    return false;
  }
}
