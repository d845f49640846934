import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageError, type StorageErrorCode } from '../errors.ts';
import { validateConfig } from './config.ts';
import { ioFlusherCommand } from './ioflusher.ts';
import type { DaemonConfig, DaemonOp, DaemonReply } from './protocol.ts';

const MAIN = new URL('./main.ts', import.meta.url).pathname;

/** How to start a storage daemon. */
export interface StorageDaemonInit extends DaemonConfig {
  /** The daemon's log (JSON lines). @default `<dataDir>/storage.log` */
  logFile?: string;
  /** Give up when the daemon is not ready after this long. @default 30000 */
  startTimeoutMs?: number;
}

/**
 * The peer's handle on its storage daemon: a child process (started under the IO-flusher helper)
 * that owns the data dir, the FUSE mount and every attached volume. Requests go over the Node IPC
 * channel; errors come back as StorageErrors with their codes. If the peer dies, the daemon sees
 * the channel close, flushes what it can and exits.
 */
export class StorageDaemon {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  readonly #logFile: string;
  readonly exited: Promise<void>;
  #next = 1;
  #ioFlusher = false;

  private constructor(child: ChildProcess, logFile: string) {
    this.#child = child;
    this.#logFile = logFile;
    this.exited = new Promise((resolve) => child.once('exit', () => {
      for (const pending of this.#pending.values()) pending.reject(new StorageError('ERR_DAEMON', `storage daemon exited; see ${logFile}`));
      this.#pending.clear();
      resolve();
    }));
    child.on('message', (message: DaemonReply) => {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      if (message.error) pending.reject(new StorageError(message.error.code as StorageErrorCode, message.error.message, { fields: message.error.fields }));
      else pending.resolve(message.value);
    });
  }

  /** Starts a daemon on `init.dataDir` and waits until it serves requests. */
  static async start(options: StorageDaemonInit): Promise<StorageDaemon> {
    const init = validateConfig({ ...options });
    await mkdir(init.dataDir, { recursive: true });
    const pidFile = join(init.dataDir, 'daemon.pid');
    await waitForPrevious(pidFile);
    const logFile = init.logFile ?? join(init.dataDir, 'storage.log');
    const { logFile: _log, startTimeoutMs, ...config } = init;
    const command = ioFlusherCommand([process.execPath, '--disable-warning=ExperimentalWarning', MAIN, JSON.stringify(config)]);
    const log = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(command.file, command.args, {
        stdio: ['ignore', log, log, 'ipc'],
        serialization: 'advanced',
        // Cache and dirty-file I/O run on the libuv threadpool; the default 4 threads would cap
        // concurrent requests far below the loop device's queue depth.
        env: { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '16' },
      });
    } finally {
      closeSync(log);
    }
    const daemon = new StorageDaemon(child, logFile);
    await writeFile(pidFile, `${child.pid}\n`);
    const timeoutMs = startTimeoutMs ?? 30_000;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new StorageError('ERR_DAEMON', `storage daemon not ready after ${timeoutMs} ms; see ${logFile}`)), timeoutMs);
        child.on('message', (message: { ready?: { ioFlusher: boolean } }) => {
          if (!message.ready) return;
          clearTimeout(timer);
          daemon.#ioFlusher = message.ready.ioFlusher;
          resolve();
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new StorageError('ERR_DAEMON', `storage daemon exited with ${code} during start-up; see ${logFile}`));
        });
      });
    } catch (error) {
      await daemon.kill();
      const tail = (await readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join('\n');
      throw new StorageError('ERR_DAEMON', `${(error as Error).message}\n${tail}`, { cause: error });
    }
    return daemon;
  }

  /** The daemon's process id. */
  get pid(): number {
    return this.#child.pid!;
  }

  /** Whether the daemon runs with PR_SET_IO_FLUSHER. */
  get ioFlusher(): boolean {
    return this.#ioFlusher;
  }

  /** Path of the daemon's log. */
  get logFile(): string {
    return this.#logFile;
  }

  /** Sends one request and resolves with its answer; fails with the daemon's StorageError. */
  call<T = unknown>(op: DaemonOp, args: Record<string, unknown> = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.#child.connected) return reject(new StorageError('ERR_DAEMON', `storage daemon is not running; see ${this.#logFile}`));
      const id = this.#next++;
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.#child.send({ id, op, args }, (error) => {
        if (!error) return;
        this.#pending.delete(id);
        reject(new StorageError('ERR_DAEMON', `send to storage daemon: ${error.message}`, { cause: error }));
      });
    });
  }

  /** Unmounts and flushes everything, then waits for the daemon to exit (killing it after `timeoutMs`). */
  async stop(timeoutMs = 120_000): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), timeoutMs);
    await this.call('stop').catch(() => undefined);
    await this.exited;
    clearTimeout(timer);
  }

  /** Kills the daemon at once (SIGKILL), as a crash would; mounts it served are left to clean up. */
  async kill(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill('SIGKILL');
    await this.exited;
  }
}

/**
 * A daemon left by a peer that was killed keeps flushing and then unmounts its FUSE mount; a new
 * daemon on the same data dir must not start until it is gone, or the old one's unmount would
 * take down the new mount. Waits for it (it is flushing acknowledged data), killing it after 30 s.
 */
async function waitForPrevious(pidFile: string): Promise<void> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 0) return;
  const isDaemon = async (): Promise<boolean> =>
    (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes(MAIN);
  for (let waited = 0; await isDaemon(); waited += 100) {
    if (waited >= 30_000) {
      process.kill(pid, 'SIGKILL');
      if (waited >= 35_000) throw new StorageError('ERR_DAEMON', `previous storage daemon (pid ${pid}) does not exit`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
