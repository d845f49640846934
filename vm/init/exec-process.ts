import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { innerPid } from './ports.ts';
import { childInContainer } from './procfs.ts';
import type { ExecSpec, Runc } from './runc.ts';

/** Signals a client may send, by name without `SIG`. */
export const SIGNALS = {
  HUP: 1, INT: 2, QUIT: 3, KILL: 9, USR1: 10, USR2: 12, ALRM: 14, TERM: 15, CONT: 18, STOP: 19, TSTP: 20, WINCH: 28,
} as const;

export type SignalName = keyof typeof SIGNALS;

/** Signals the process group led by `pid`, else `pid` alone; nothing if it is gone (its exit is on its way). */
export function signalGroup(pid: number, name: SignalName): void {
  try {
    process.kill(-pid, SIGNALS[name]);
  } catch {
    try {
      process.kill(pid, SIGNALS[name]);
    } catch {
      // Gone already.
    }
  }
}

/** `TERM`, `SIGTERM`, `sigterm` -> `TERM`; undefined for anything else. */
export function signalName(value: unknown): SignalName | undefined {
  if (typeof value !== 'string') return undefined;
  const name = value.toUpperCase().replace(/^SIG/, '');
  return Object.hasOwn(SIGNALS, name) ? (name as SignalName) : undefined;
}

/** Output stream ids of a process (the frame ids of stdout and stderr). */
export type OutputStream = 1 | 2;

/** One command of an exec: started with `runc exec` (pipes or a terminal) or by the sprite agent (agent-exec.ts). */
export interface ExecProcess {
  readonly tty: boolean;
  write(data: Buffer): void;
  /** Closes stdin (a terminal gets Ctrl-D). */
  endInput(): void;
  resize(cols: number, rows: number): void;
  pause(): void;
  resume(): void;
  /**
   * Sends a signal to the command's process group (runc makes it a session leader), or to runc,
   * which passes it on, while the command's pid is not known yet. Answers the pid as the sprite
   * sees it, 0 when unknown.
   */
  signal(name: SignalName): number;
  /** The command's pid as the sprite sees it (0 until runc started it). */
  pid(): number;
  onOutput(listener: (stream: OutputStream, data: Buffer) => void): void;
  /** Called once, with the shell-style status (128 + signal when killed), after the last output. */
  onExit(listener: (status: number) => void): void;
}

/** Terminal size of a TTY exec. */
export interface TermSize {
  cols: number;
  rows: number;
}

/** Starts `spec` with pipes for stdin, stdout and stderr. */
export function spawnPiped(runc: Runc, spec: ExecSpec): ExecProcess {
  const command = runc.execCommand({ ...spec, tty: false });
  const child = spawn(command.file, command.args, { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => undefined);
  child.once('error', () => undefined);
  const pids = new CommandPid(child.pid ?? 0);
  return {
    tty: false,
    write: (data) => void child.stdin.write(data),
    endInput: () => void child.stdin.end(),
    resize: () => undefined,
    pause: () => {
      child.stdout.pause();
      child.stderr.pause();
    },
    resume: () => {
      child.stdout.resume();
      child.stderr.resume();
    },
    signal: (name) => pids.signal(name, () => child.kill(`SIG${name}`)),
    pid: () => pids.inner(),
    onOutput: (listener) => {
      child.stdout.on('data', (data: Buffer) => listener(1, data));
      child.stderr.on('data', (data: Buffer) => listener(2, data));
    },
    onExit: (listener) => {
      // 'close' comes after both output pipes ended, so no output follows the exit.
      child.once('close', (code, signal) => listener(exitStatus(code, signal === null ? null : constants.signals[signal])));
    },
  };
}

/** Starts `spec` on a new terminal of `size`. */
export async function spawnTty(runc: Runc, spec: ExecSpec, size: TermSize): Promise<ExecProcess> {
  const pty = await import('node-pty');
  const command = runc.execCommand({ ...spec, tty: true });
  const proc = pty.spawn(command.file, command.args, {
    name: 'xterm-256color',
    cols: size.cols,
    rows: size.rows,
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', TERM: 'xterm-256color' },
  });
  const pids = new CommandPid(proc.pid);
  return {
    tty: true,
    write: (data) => proc.write(data),
    endInput: () => proc.write('\x04'),
    resize: (cols, rows) => proc.resize(cols, rows),
    pause: () => proc.pause(),
    resume: () => proc.resume(),
    signal: (name) => pids.signal(name, () => proc.kill(`SIG${name}`)),
    pid: () => pids.inner(),
    onOutput: (listener) => void proc.onData((text) => listener(1, Buffer.from(text, 'utf8'))),
    onExit: (listener) => void proc.onExit(({ exitCode, signal }) => listener(exitStatus(exitCode, signal ? signal : null))),
  };
}

/**
 * The command under a `runc exec`: runc's child that lives in the container's pid namespace
 * (runc forks it with CLONE_PARENT, so its parent is the runc process). Found in sprite-init's
 * /proc, which shows the sprite's processes only.
 */
class CommandPid {
  readonly #runc: number;
  #pid = 0;

  constructor(runcPid: number) {
    this.#runc = runcPid;
  }

  /** The command's pid in sprite-init's pid namespace, 0 while runc has not started it. */
  outer(): number {
    if (this.#pid === 0 && this.#runc > 0) this.#pid = childInContainer(this.#runc);
    return this.#pid;
  }

  inner(): number {
    const pid = this.outer();
    return pid === 0 ? 0 : innerPid(pid);
  }

  signal(name: SignalName, fallback: () => void): number {
    const pid = this.outer();
    if (pid === 0) {
      fallback();
      return 0;
    }
    signalGroup(pid, name);
    return innerPid(pid);
  }
}

/** Shell convention: the exit code, or 128 + signal number when killed. */
function exitStatus(code: number | null | undefined, signal: number | null): number {
  if (code !== null && code !== undefined) return code & 0xff;
  if (signal !== null) return (128 + signal) & 0xff;
  return 1;
}
