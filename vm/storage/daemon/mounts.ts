import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { StorageError } from '../errors.ts';

/** Runs a system command; fails with ERR_MOUNT naming it and its stderr. */
export function command(file: string, args: readonly string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    // spawn, not a sync call: the daemon must keep answering FUSE requests while the command
    // (mkfs, mount, fsfreeze) does I/O on its own devices.
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk; });
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk; });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new StorageError('ERR_MOUNT', `${file}: ${error.message}`, { cause: error }));
    });
    // 'close', not 'exit': a process can exit before its output is read, and `losetup --show`
    // then seemed to print nothing while its loop device stayed attached.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new StorageError('ERR_MOUNT', `${file} ${args.join(' ')}: ${stderr.trim() || `exit ${code ?? signal}`}`, { fields: { command: file } }));
    });
  });
}

/** Attaches `file` to a free loop device with direct I/O and returns the device path. */
export async function attachLoop(file: string, options: { readOnly?: boolean } = {}): Promise<string> {
  const args = ['--direct-io=on', '--find', '--show', ...(options.readOnly ? ['--read-only'] : []), file];
  const device = (await command('losetup', args)).trim();
  if (!/^\/dev\/loop\d+$/.test(device)) throw new StorageError('ERR_MOUNT', `losetup attached ${file} but named no loop device ('${device}')`);
  return device;
}

/** Detaches a loop device; while something still uses it, the kernel detaches it on last close. */
export async function detachLoop(device: string): Promise<void> {
  await command('losetup', ['-d', device]).catch((error: StorageError) => {
    if (!/No such device|not a block device|No such device or address/i.test(error.message)) throw error;
  });
}

/** Formats `device` as ext4 with lazy initialization (a new 100 GiB volume writes a few MiB). */
export async function makeExt4(device: string, label = 'sprite'): Promise<void> {
  await command('mkfs.ext4', ['-q', '-F', '-L', label, '-E', 'lazy_itable_init=1,lazy_journal_init=1,discard', device]);
}

/** Mounts an ext4 device; `discard` passes TRIM down to the volume's map. */
export async function mountExt4(device: string, target: string, options: { readOnly?: boolean } = {}): Promise<void> {
  const flags = options.readOnly ? 'ro,noload,noatime' : 'noatime,discard';
  await command('mount', ['-t', 'ext4', '-o', flags, device, target]);
}

/** Unmounts `target`; a missing mount is not an error, a busy one fails with ERR_MOUNT. */
export async function unmount(target: string, options: { lazy?: boolean } = {}): Promise<void> {
  try {
    await command('umount', options.lazy ? ['-l', target] : [target]);
  } catch (error) {
    if (/not mounted|no mount point|not found/i.test((error as Error).message)) return;
    throw error;
  }
}

/** Freezes a mounted filesystem (writes block, dirty data is flushed to the device). */
export async function freeze(target: string): Promise<void> {
  await command('fsfreeze', ['--freeze', target]);
}

/** Thaws a frozen filesystem. */
export async function thaw(target: string): Promise<void> {
  await command('fsfreeze', ['--unfreeze', target]);
}

/** Loop devices whose backing file lives under `dir`, from sysfs. */
export async function loopsBackedUnder(dir: string): Promise<string[]> {
  const out = await command('losetup', ['--noheadings', '--list', '--output', 'NAME,BACK-FILE']).catch(() => '');
  return out.split('\n').map((line) => line.trim().split(/\s+/)).filter((f) => f.length >= 2 && f[1]!.startsWith(`${dir}/`)).map((f) => f[0]!);
}

/** Mount points of `source` devices or of paths under `dir`, deepest first, from /proc/self/mountinfo. */
export async function mountsOf(options: { sources?: string[]; under?: string }): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of info.split('\n')) {
    const fields = line.split(' ');
    const target = fields[4];
    if (!target) continue;
    const source = fields[fields.indexOf('-') + 2];
    if ((options.sources && source && options.sources.includes(source)) || (options.under && (target === options.under || target.startsWith(`${options.under}/`)))) out.push(target);
  }
  return out.sort((a, b) => b.length - a.length);
}
