/**
 * The agent's execs: one command per connection (exec-wire.ts), forked by the agent so it inherits the
 * container's namespaces, cgroup, seccomp filter, capabilities and user exactly as a `runc exec` child
 * would. The command runs as runc runs it, through `/bin/sh -c 'exec "$@"'` as a session leader, with
 * the agent's own environment (what runc gave it: the container's process env and HOME) and the
 * exec's on top, as `runc exec --env` does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Socket } from 'node:net';
import { EXEC, ExecFrames, execFrame, u32 } from './exec-wire.ts';

const BASE_ENV: Record<string, string | undefined> = { ...process.env };

interface ExecRequest {
  command: string[];
  env: Record<string, string>;
  dir: string;
}

/** Execs whose status has not gone out yet; `idle` runs when that drops to zero. */
export const execs = { running: 0, idle: (): void => undefined };

/** Serves one exec on `socket`: the request frame, stdin frames, and back the pid, output and status. */
export function serveExec(socket: Socket): void {
  let child: ChildProcess | undefined;
  let finished = false;
  let counted = true;
  execs.running++;
  const done = (): void => {
    if (!counted) return;
    counted = false;
    if (--execs.running === 0) execs.idle();
  };
  const finish = (status: number, message?: string): void => {
    if (finished) return;
    finished = true;
    if (message) socket.write(execFrame(EXEC.stderr, Buffer.from(`${message}\n`)));
    socket.end(execFrame(EXEC.exit, Buffer.of(status & 0xff)), done);
  };
  const frames = new ExecFrames((kind, data) => {
    if (!child) {
      if (kind !== EXEC.request) return void socket.destroy();
      child = start(parse(data), socket, finish);
    } else if (kind === EXEC.stdin && child.stdin?.writable) {
      // A command that does not read its input holds the connection back, and so its writer.
      if (!child.stdin.write(data)) {
        socket.pause();
        child.stdin.once('drain', () => socket.resume());
      }
    } else if (kind === EXEC.stdinEof) {
      child.stdin?.end();
    }
  });
  socket.on('data', (chunk: Buffer) => {
    if (!frames.push(chunk)) socket.destroy();
  });
  // sprite-init went away or cut the exec before its end: the command goes with it, as it would with runc.
  socket.on('close', () => {
    if (!finished && child?.pid) killGroup(child.pid);
    finished = true;
    done();
  });
  socket.on('error', () => undefined);
}

function parse(data: Buffer): ExecRequest | undefined {
  try {
    const request = JSON.parse(data.toString('utf8')) as ExecRequest;
    const strings = (values: unknown[]): boolean => values.every((value) => typeof value === 'string' && !value.includes('\0'));
    if (!Array.isArray(request.command) || request.command.length === 0 || !strings(request.command)) return undefined;
    if (typeof request.env !== 'object' || request.env === null || !strings(Object.values(request.env))) return undefined;
    if (typeof request.dir !== 'string' || !request.dir.startsWith('/')) return undefined;
    return request;
  } catch {
    return undefined;
  }
}

function start(request: ExecRequest | undefined, socket: Socket, finish: (status: number, message?: string) => void): ChildProcess | undefined {
  if (!request) {
    finish(255, 'exec: a malformed request');
    return undefined;
  }
  const child = spawn('/bin/sh', ['-c', 'exec "$@"', 'sh', ...request.command], {
    cwd: request.dir, env: { ...BASE_ENV, ...request.env }, detached: true, stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.on('error', () => undefined);
  // runc fails this way too (its exit code 255) when the directory or the shell is missing.
  child.once('error', (error) => finish(255, `exec failed: ${error.message} (cwd ${request.dir})`));
  if (child.pid) socket.write(execFrame(EXEC.pid, u32(child.pid)));
  // A slow reader (sprite-init pausing for its client) pauses the command's output.
  let paused = false;
  const out = (kind: number) => (data: Buffer): void => {
    if (socket.write(execFrame(kind, data)) || paused) return;
    paused = true;
    child.stdout.pause();
    child.stderr.pause();
    socket.once('drain', () => {
      paused = false;
      child.stdout.resume();
      child.stderr.resume();
    });
  };
  child.stdout.on('data', out(EXEC.stdout));
  child.stderr.on('data', out(EXEC.stderr));
  // 'close' comes after both output pipes ended, so no output follows the status.
  child.once('close', (code, signal) => {
    if (code !== null) finish(code);
    else finish(signal ? 128 + constants.signals[signal] : 1);
  });
  return child;
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
}
