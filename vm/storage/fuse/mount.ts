import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { StorageError } from '../errors.ts';
import { S_IFDIR } from './protocol.ts';

/**
 * Mounts the FUSE session open on `fd` at `mountpoint`, as filesystem type `fuse.<source>`
 * with `source` shown in /proc/mounts. Fails with ERR_FUSE carrying mount's message.
 */
export async function mountFuse(fd: number, mountpoint: string, source: string): Promise<void> {
  // `-i` calls mount(2) directly (no mount.fuse helper); the helper would want to open
  // /dev/fuse itself. The device fd is inherited as fd 3 of the mount process.
  const options = `fd=3,rootmode=${S_IFDIR.toString(8)},user_id=0,group_id=0,default_permissions`;
  await new Promise<void>((resolve, reject) => {
    const child = spawn('mount', ['-i', '-t', `fuse.${source}`, '-o', options, source, mountpoint], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk; });
    child.on('error', (error) => reject(new StorageError('ERR_FUSE', `mount fuse: ${error.message}`, { cause: error })));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new StorageError('ERR_FUSE', `mount fuse at ${mountpoint}: ${stderr.trim() || `exit ${code}`}`));
    });
  });
}

/**
 * Unmounts `mountpoint`. With `force`, a busy mount has its connection aborted and is detached
 * lazily instead of failing; without it, umount's failure is the error (ERR_FUSE).
 */
export async function unmount(mountpoint: string, force: boolean): Promise<void> {
  try {
    await run('umount', [mountpoint]);
  } catch (error) {
    if (!force) throw error;
    await abortConnection(mountpoint).catch(() => undefined);
    await run('umount', ['-l', mountpoint]).catch(() => undefined);
  }
}

/**
 * Aborts the FUSE connection mounted at `mountpoint` through /sys/fs/fuse/connections, so
 * requests pending on a dead server fail with ENOTCONN. The device number comes from
 * /proc/self/mountinfo: stat(2) on the mountpoint would itself wait on the server.
 */
export async function abortConnection(mountpoint: string): Promise<void> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] !== mountpoint) continue;
    const minor = fields[2]?.split(':')[1];
    if (minor === undefined) continue;
    await writeFile(`/sys/fs/fuse/connections/${minor}/abort`, '1').catch(() => undefined);
  }
}

async function run(file: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk; });
    child.on('error', reject);
    child.on('close', (code) => code === 0 ? resolve() : reject(new StorageError('ERR_FUSE', `${file} ${args.join(' ')}: ${stderr.trim() || `exit ${code}`}`)));
  });
}
