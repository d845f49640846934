import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { CONTROL, STREAM, controlFrame, decodeControl, readFrames, streamFrame } from '../frames.ts';
import type { ExecSpec, Runc } from './runc.ts';

/** A TTY session as listed by the API. */
export interface SessionInfo {
  id: string;
  command: string[];
  tty: true;
  created: string;
  attached: boolean;
}

/** Terminal size of a TTY exec. */
export interface TermSize {
  cols: number;
  rows: number;
}

// Enough scrollback to redraw a screen or two on re-attach, bounded per session.
const REPLAY_BYTES = 64 * 1024;

interface Pty {
  pause(): void;
  resume(): void;
  onData(listener: (data: string) => void): unknown;
  onExit(listener: (event: { exitCode: number; signal?: number }) => void): unknown;
  write(data: string | Buffer): void;
  resize(cols: number, rows: number): void;
  kill(signal?: string): void;
}

interface Session {
  info: SessionInfo;
  pty: Pty;
  replay: Buffer[];
  replayBytes: number;
  client: Socket | undefined;
}

/** Runs exec requests: plain ones tied to their connection, TTY ones as detachable sessions. */
export class Sessions {
  readonly #runc: Runc;
  readonly #sessions = new Map<string, Session>();
  #active = 0;

  constructor(runc: Runc) {
    this.#runc = runc;
  }

  /** Number of exec processes and sessions alive (a sprite with any is not idle). */
  get active(): number {
    return this.#active + this.#sessions.size;
  }

  /** Lists TTY sessions. */
  list(): SessionInfo[] {
    return [...this.#sessions.values()].map((s) => ({ ...s.info, attached: s.client !== undefined }));
  }

  /** Runs a command bound to `socket`: frames in, frames out, exit frame, close. */
  exec(spec: ExecSpec, socket: Socket): void {
    const child = spawn('runc', this.#runc.execArgs({ ...spec, tty: false }), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#active += 1;
    // A slow client pauses the process's output instead of growing the socket's buffer.
    const forward = (id: number, source: NodeJS.ReadableStream) => (data: Buffer): void => {
      if (!socket.write(streamFrame(id, data))) {
        source.pause();
        socket.once('drain', () => source.resume());
      }
    };
    child.stdout.on('data', forward(STREAM.stdout, child.stdout));
    child.stderr.on('data', forward(STREAM.stderr, child.stderr));
    child.stdin.on('error', () => undefined);
    child.once('error', () => undefined);
    readFrames(socket, (payload) => {
      if (payload[0] === STREAM.stdin) child.stdin.write(payload.subarray(1));
      else if (payload[0] === STREAM.stdinEof) child.stdin.end();
    });
    let exited = false;
    child.once('close', (code, signal) => {
      exited = true;
      this.#active -= 1;
      socket.end(streamFrame(STREAM.exit, Buffer.of(exitStatus(code, signal))));
    });
    socket.once('close', () => {
      if (exited) return;
      // runc forwards SIGTERM to the process; SIGKILL on runc would orphan it.
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    });
    socket.on('error', () => undefined);
  }

  /** Starts a TTY session and attaches `socket` to it. */
  async execTty(spec: ExecSpec, size: TermSize, socket: Socket): Promise<void> {
    const pty = await import('node-pty');
    const proc = pty.spawn('runc', this.#runc.execArgs({ ...spec, tty: true }), {
      name: 'xterm-256color',
      cols: size.cols,
      rows: size.rows,
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', TERM: 'xterm-256color' },
    });
    const id = randomBytes(4).toString('hex');
    const session: Session = {
      info: { id, command: spec.command, tty: true, created: new Date().toISOString(), attached: false },
      pty: proc,
      replay: [],
      replayBytes: 0,
      client: undefined,
    };
    this.#sessions.set(id, session);
    proc.onData((text) => {
      const data = Buffer.from(text, 'utf8');
      session.replay.push(data);
      session.replayBytes += data.length;
      while (session.replayBytes > REPLAY_BYTES && session.replay.length > 1) session.replayBytes -= session.replay.shift()!.length;
      const client = session.client;
      if (client && !client.write(streamFrame(STREAM.stdout, data))) {
        proc.pause();
        client.once('drain', () => proc.resume());
        client.once('close', () => proc.resume());
      }
    });
    proc.onExit(({ exitCode, signal }) => {
      this.#sessions.delete(id);
      session.client?.end(streamFrame(STREAM.exit, Buffer.of(exitStatus(exitCode, signal ? signal : null))));
    });
    this.attach(id, socket, false);
  }

  /** Attaches `socket` to a session, replacing any previous client; false if there is no such session. */
  attach(id: string, socket: Socket, replay = true): boolean {
    const session = this.#sessions.get(id);
    if (!session) return false;
    session.client?.end();
    session.client = socket;
    socket.write(controlFrame({ type: 'session', id }));
    if (replay && session.replay.length > 0) socket.write(streamFrame(STREAM.stdout, Buffer.concat(session.replay)));
    readFrames(socket, (payload) => {
      if (payload[0] === STREAM.stdin) session.pty.write(payload.subarray(1));
      else if (payload[0] === STREAM.stdinEof) session.pty.write('\x04');
      else if (payload[0] === CONTROL) {
        const message = decodeControl(payload) as { type?: string; cols?: number; rows?: number };
        if (message.type === 'resize' && validSize(message.cols) && validSize(message.rows)) session.pty.resize(message.cols, message.rows);
      }
    });
    socket.once('close', () => {
      // Closing the connection detaches; the session keeps running.
      if (session.client === socket) session.client = undefined;
    });
    socket.on('error', () => undefined);
    return true;
  }

  /** Kills a session's process; false if there is no such session. */
  kill(id: string): boolean {
    const session = this.#sessions.get(id);
    if (!session) return false;
    session.pty.kill('SIGHUP');
    return true;
  }

  /** Kills every session (sprite stopping). */
  killAll(): void {
    for (const id of this.#sessions.keys()) this.kill(id);
  }
}

function validSize(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) <= 1000;
}

/** Shell convention: the exit code, or 128 + signal number when killed. */
function exitStatus(code: number | null, signal: NodeJS.Signals | number | null): number {
  if (code !== null && code !== undefined) return code & 0xff;
  if (typeof signal === 'number') return (128 + signal) & 0xff;
  if (typeof signal === 'string') return (128 + (signalNumber(signal) ?? 1)) & 0xff;
  return 1;
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal];
}
