import { spawn } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { bundleCgroupPath, cgroupProcsFiles, inCgroup } from './cgroup.ts';

/** Where a sprite's runc state and bundle live, as sprite-init sees them. */
export interface RuncInit {
  root: string;
  bundle: string;
  id: string;
  /** File that receives runc's own output (errors) for create/start. */
  logFile: string;
  /** File `runc create` writes the container's first pid to. */
  pidFile: string;
}

/** Options of one process started with `runc exec`. */
export interface ExecSpec {
  command: string[];
  env?: Record<string, string>;
  dir?: string;
  tty?: boolean;
  /** runc writes the process's pid (in sprite-init's pid namespace) here once it exists. */
  pidFile?: string;
}

/** Drives runc for the one inner container of this sprite. */
export class Runc {
  readonly #init: RuncInit;
  #pid: number | undefined;
  #cgroupProcs: string[] = [];

  constructor(init: RuncInit) {
    this.#init = init;
  }

  /** Creates the container (processes set up, user code not started) and learns its first process's pid. */
  async create(): Promise<void> {
    await this.#run(['create', '--bundle', this.#init.bundle, '--pid-file', this.#init.pidFile, this.#init.id]);
    const pid = Number((await readFile(this.#init.pidFile, 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`runc create wrote no pid to ${this.#init.pidFile}`);
    this.#pid = pid;
    this.#cgroupProcs = cgroupProcsFiles(bundleCgroupPath(this.#init.bundle));
  }

  /** Starts the created container. */
  async start(): Promise<void> {
    await this.#run(['start', this.#init.id]);
  }

  /** Kills every process of the container and deletes it (cgroups and state included). */
  async destroy(): Promise<void> {
    await this.#run(['delete', '--force', this.#init.id]).catch(() => undefined);
  }

  /**
   * Pid of the container's first process, as seen from sprite-init: the one `runc create` wrote
   * (it stays while the container lives), so no `runc state` is spent on the start path.
   */
  get pid(): number {
    if (this.#pid === undefined) throw new Error('the container is not created');
    return this.#pid;
  }

  /** Arguments for `runc exec` of a process; the command runs through sh so a missing program exits 127. */
  execArgs(spec: ExecSpec): string[] {
    const args = ['--root', this.#init.root, 'exec'];
    if (spec.tty) args.push('--tty');
    if (spec.pidFile) args.push('--pid-file', spec.pidFile);
    args.push('--cwd', spec.dir ?? '/root');
    for (const [key, value] of Object.entries(spec.env ?? {})) args.push('--env', `${key}=${value}`);
    args.push(this.#init.id, '/bin/sh', '-c', 'exec "$@"', 'sh', ...spec.command);
    return args;
  }

  /** The program and arguments that start `runc exec` of `spec` inside the container's cgroup (see cgroup.ts). */
  execCommand(spec: ExecSpec): { file: string; args: string[] } {
    return inCgroup(this.#cgroupProcs, 'runc', this.execArgs(spec));
  }

  async #run(args: string[]): Promise<void> {
    const log = await open(this.#init.logFile, 'a');
    try {
      // Output goes to a file, not a pipe: the container's first process inherits runc's stdio
      // and would hold a pipe open for its whole life.
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn('runc', ['--root', this.#init.root, ...args], { stdio: ['ignore', log.fd, log.fd] });
        child.once('error', reject);
        child.once('exit', (status, signal) => resolve(status ?? (signal ? 128 : 1)));
      });
      if (code !== 0) throw new Error(`runc ${args[0]} exited with ${code}; see ${this.#init.logFile}`);
    } finally {
      await log.close();
    }
  }
}
