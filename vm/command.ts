import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { VmError } from './errors.ts';

/** Options for one system command. */
export interface CommandOptions {
  /** Text written to the command's stdin. */
  input?: string;
  /** Give up after this many milliseconds. @default 30000 */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** Runs a system command and resolves with its stdout; fails with `ERR_COMMAND` naming the command and its stderr. */
export function runCommand(file: string, args: readonly string[], options: CommandOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        timeout: options.timeoutMs ?? 30_000,
        maxBuffer: 16 * 1024 * 1024,
        env: options.env ? { ...process.env, ...options.env } : process.env,
      },
      (error, stdout, stderr) => {
        if (error) {
          const detail = String(stderr).trim() || error.message;
          reject(new VmError('ERR_COMMAND', `${file} ${args.slice(0, 3).join(' ')}: ${detail}`, { cause: error }));
          return;
        }
        resolve(String(stdout));
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** True when `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** True while a process with this pid exists (signal 0 checks without sending anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
