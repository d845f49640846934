import type { Socket } from 'node:net';
import { CONTROL, STREAM, controlFrame, decodeControl, readFrames, streamFrame } from '../frames.ts';
import { signalName, type ExecProcess, type OutputStream, type SignalName, type TermSize } from './exec-process.ts';
import type { PortEvent, PortSubscription, PortWatcher } from './ports.ts';

/** A session as `GET /v1/sprites/{name}/exec` lists it (the wire's snake_case). */
export interface SessionInfo {
  id: string;
  command: string;
  workdir: string;
  created: string;
  bytes_per_second: number;
  /** A client is attached. */
  is_active: boolean;
  last_activity: string | null;
  tty: boolean;
}

/** What happens to a session's process when its client goes away. */
export interface DisconnectPolicy {
  /** Detachable sessions keep running with no client (for `maxRunAfterDisconnectMs` if set, else for ever). */
  detachable: boolean;
  /** How long the process may run with no client; null or 0: for ever when detachable, not at all otherwise. */
  maxRunAfterDisconnectMs: number | null;
}

/** One event of a kill's progress (SessionKillEvent on the wire). */
export interface KillEvent {
  type: 'signal' | 'timeout' | 'exited' | 'killed' | 'error' | 'complete';
  message?: string;
  signal?: string;
  pid?: number;
  exit_code?: number;
}

/** What a session starts from. */
export interface SessionInit {
  id: string;
  command: string[];
  workdir: string;
  size: TermSize;
  /** Whether the client may write to stdin. */
  stdin: boolean;
  policy: DisconnectPolicy;
  ports: PortWatcher;
  /** Called once the process exited and the session is over. */
  onEnd: () => void;
}

// Enough scrollback to redraw a screen or two on re-attach, or the output missed while detached.
const REPLAY_BYTES = 64 * 1024;
// After the SIGTERM of a disconnect or a kill's SIGKILL, how long the process has to go.
const KILL_GRACE_MS = 5000;

/**
 * One exec: its process, the one client attached (a newer attach replaces it), the output kept
 * for the next client, and what happens when the client goes. The client's connection carries
 * stream frames both ways and control frames (session_info, ports, resize, signal).
 */
export class Session {
  readonly id: string;
  readonly #init: SessionInit;
  readonly #created = Date.now();
  readonly #rate = new Throughput();
  readonly #ports: PortSubscription;
  #proc: ExecProcess | undefined;
  #size: TermSize;
  #client: Socket | undefined;
  #lastActivity: number | undefined;
  #replay: Buffer[] = [];
  #replayBytes = 0;
  #paused = false;
  #timer: NodeJS.Timeout | undefined;
  #status: number | undefined;
  readonly #exitWaiters = new Set<(status: number) => void>();

  /** Subscribes to port changes before the process exists, so none it makes is missed. */
  constructor(init: SessionInit) {
    this.id = init.id;
    this.#init = init;
    this.#size = init.size;
    this.#ports = init.ports.subscribe((event) => this.#port(event));
  }

  /** Wires the started process; what it prints before a client attaches is kept for that client. */
  run(proc: ExecProcess): void {
    this.#proc = proc;
    proc.onOutput((stream, data) => this.#output(stream, data));
    proc.onExit((status) => this.#exited(status));
    if (!this.#init.stdin && !proc.tty) proc.endInput();
  }

  /** Drops what the constructor took, for a process that could not be started. */
  abandon(): void {
    this.#ports.close();
  }

  get tty(): boolean {
    return this.#proc?.tty ?? false;
  }

  info(): SessionInfo {
    return {
      id: this.id,
      command: this.#init.command.join(' '),
      workdir: this.#init.workdir,
      created: new Date(this.#created).toISOString(),
      bytes_per_second: this.#rate.perSecond(),
      is_active: this.#client !== undefined,
      last_activity: this.#lastActivity === undefined ? null : new Date(this.#lastActivity).toISOString(),
      tty: this.tty,
    };
  }

  /** Attaches `socket`, closing the previous client's connection, and sends the kept output first. */
  attach(socket: Socket): void {
    const previous = this.#client;
    this.#client = socket;
    previous?.end();
    this.#resume();
    clearTimeout(this.#timer);
    socket.on('error', () => undefined);
    socket.write(controlFrame({
      type: 'session_info', session_id: Number(this.id), command: this.#init.command.join(' '), created: Math.floor(this.#created / 1000),
      cols: this.#size.cols, rows: this.#size.rows, is_owner: true, tty: this.tty,
    }));
    for (const frame of this.#replay) socket.write(frame);
    // Without a terminal only what no client saw is kept; a terminal keeps its recent screen.
    if (!this.tty) this.#forget();
    if (this.#status !== undefined) {
      // It ended before this client came (a quick command): the client still gets its output and status.
      socket.end(streamFrame(STREAM.exit, Buffer.of(this.#status)));
      return;
    }
    readFrames(socket, (payload) => {
      if (this.#client === socket) this.#input(payload);
    });
    socket.once('close', () => this.#detached(socket));
  }

  /** Signals the process group, waits `timeoutMs` for it to exit, then SIGKILLs it; reports each step. */
  async kill(signal: SignalName, timeoutMs: number, emit: (event: KillEvent) => void): Promise<void> {
    const pid = this.#proc?.signal(signal) ?? 0;
    emit({ type: 'signal', message: `Signaling SIG${signal} to process group ${pid}`, signal: `SIG${signal}`, pid });
    let status = await this.#exit(timeoutMs);
    if (status === undefined) {
      emit({ type: 'timeout', message: `Timeout after ${timeoutMs / 1000}s, sending SIGKILL` });
      this.#proc?.signal('KILL');
      status = await this.#exit(KILL_GRACE_MS);
      if (status === undefined) {
        emit({ type: 'error', message: 'the process did not exit after SIGKILL' });
        return;
      }
      emit({ type: 'killed', message: 'Process killed' });
    } else {
      emit({ type: 'exited', message: 'Process exited' });
    }
    emit({ type: 'complete', exit_code: status });
  }

  /** SIGTERM, then SIGKILL if it is still running after a grace period. */
  terminate(): void {
    if (this.#status !== undefined || !this.#proc) return;
    this.#proc.signal('TERM');
    void this.#exit(KILL_GRACE_MS).then((status) => {
      if (status === undefined) this.#proc?.signal('KILL');
    });
  }

  #input(payload: Buffer): void {
    const proc = this.#proc;
    if (!proc) return;
    if (payload[0] === STREAM.stdin) {
      if (!this.#init.stdin || payload.length === 1) return;
      this.#lastActivity = Date.now();
      proc.write(payload.subarray(1));
    } else if (payload[0] === STREAM.stdinEof) {
      if (!proc.tty) proc.endInput();
    } else if (payload[0] === CONTROL) {
      const message = decodeControl(payload) as { type?: unknown; cols?: unknown; rows?: unknown; signal?: unknown };
      if (message?.type === 'resize' && validSize(message.cols) && validSize(message.rows)) {
        this.#size = { cols: message.cols, rows: message.rows };
        proc.resize(message.cols, message.rows);
      }
      const signal = message?.type === 'signal' ? signalName(message.signal) : undefined;
      if (signal) proc.signal(signal);
    }
  }

  #output(stream: OutputStream, data: Buffer): void {
    this.#lastActivity = Date.now();
    this.#rate.add(data.length);
    const frame = streamFrame(stream, data);
    if (this.tty || !this.#client) this.#remember(frame);
    const client = this.#client;
    // A slow client pauses the process; with no client the output only goes to the bounded replay.
    if (client && !client.write(frame) && !this.#paused) {
      this.#paused = true;
      this.#proc?.pause();
      client.once('drain', () => this.#resume());
    }
  }

  #resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#proc?.resume();
  }

  #remember(frame: Buffer): void {
    this.#replay.push(frame);
    this.#replayBytes += frame.length;
    while (this.#replayBytes > REPLAY_BYTES && this.#replay.length > 1) this.#replayBytes -= this.#replay.shift()!.length;
  }

  #forget(): void {
    this.#replay = [];
    this.#replayBytes = 0;
  }

  #port(event: PortEvent): void {
    this.#client?.write(controlFrame(event));
  }

  #detached(socket: Socket): void {
    if (this.#client !== socket) return;
    this.#client = undefined;
    this.#resume();
    if (this.#status !== undefined) return;
    const { detachable, maxRunAfterDisconnectMs: max } = this.#init.policy;
    if (!max) {
      if (!detachable) this.terminate();
      return;
    }
    this.#timer = setTimeout(() => this.terminate(), max);
  }

  #exited(status: number): void {
    this.#status = status;
    clearTimeout(this.#timer);
    this.#ports.close();
    this.#client?.end(streamFrame(STREAM.exit, Buffer.of(status)));
    for (const waiter of this.#exitWaiters) waiter(status);
    this.#init.onEnd();
  }

  /** The exit status once the process exits, or undefined after `timeoutMs`. */
  #exit(timeoutMs: number): Promise<number | undefined> {
    if (this.#status !== undefined) return Promise.resolve(this.#status);
    return new Promise((resolve) => {
      const done = (status: number | undefined): void => {
        clearTimeout(timer);
        this.#exitWaiters.delete(done);
        resolve(status);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      this.#exitWaiters.add(done);
    });
  }
}

function validSize(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) <= 1000;
}

/** Output bytes per second over the last ten seconds. */
class Throughput {
  readonly #slots = new Array<number>(10).fill(0);
  #second = Math.floor(Date.now() / 1000);

  add(bytes: number): void {
    this.#advance();
    this.#slots[this.#second % 10]! += bytes;
  }

  perSecond(): number {
    this.#advance();
    return Math.round(this.#slots.reduce((a, b) => a + b, 0) / 10);
  }

  #advance(): void {
    const now = Math.floor(Date.now() / 1000);
    for (let s = this.#second + 1; s <= Math.min(now, this.#second + 10); s++) this.#slots[s % 10] = 0;
    this.#second = Math.max(this.#second, now);
  }
}
