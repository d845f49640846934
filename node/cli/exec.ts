// Bridges local stdin/stdout/stderr to an exec or attach WebSocket (framing per docs/API.md):
// without a terminal binary messages carry a stream id byte; with one they are raw terminal bytes
// and the exit status comes in a text message.
import type WebSocket from 'ws';
import type { Query } from './client.ts';
import type { PortEvent } from './port-forward.ts';

/** Stream ids: the first byte of every binary frame. */
export const STREAM = Object.freeze({ stdin: 0, stdout: 1, stderr: 2, exit: 3, eof: 4 });

/** Ctrl-]: the key that detaches from an attached session. */
export const DETACH_KEY = 0x1d;

/** Pause reading stdin while this many bytes wait to go out on the socket. */
const HIGH_WATER = 1024 * 1024;
/** Resume reading stdin once the socket's backlog falls below this. */
const LOW_WATER = 256 * 1024;

/** The local streams a bridge uses. */
export interface Io {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

/** How to run a bridge. */
export interface BridgeOptions {
  /**
   * Terminal mode: raw local stdin (when a TTY), raw framing and resize messages. `auto` (attach)
   * takes the mode from the session's `session_info`, which comes before any output.
   */
  tty: boolean | 'auto';
  /** Send the current terminal size as soon as the bridge starts (attach has no size in its URL). */
  sendInitialSize?: boolean;
  /** A byte that detaches when typed on a TTY stdin; undefined disables detaching. */
  detachKey?: number;
  /** Called with each port event of the exec (`port_opened` / `port_closed`). */
  onPort?: (event: PortEvent) => void;
}

/** How a bridge ended: the remote exit status, a local detach, or a lost connection. */
export type BridgeResult =
  | { kind: 'exit'; code: number }
  | { kind: 'detached'; sessionId: string | undefined }
  | { kind: 'lost'; sessionId: string | undefined; code: number; reason: string };

/** Options that shape the exec URL's query. */
export interface ExecQueryInit {
  tty: boolean;
  /** The session outlives its client (until it exits or is killed). */
  detachable?: boolean;
  cols?: number | undefined;
  rows?: number | undefined;
  dir?: string | undefined;
  env?: readonly string[];
}

/** Builds the query of `GET /v1/sprites/{name}/exec` for a command line. */
export function execQuery(cmd: readonly string[], init: ExecQueryInit): Query {
  const query: Array<[string, string]> = cmd.map((arg) => ['cmd', arg]);
  query.push(['stdin', 'true']);
  if (init.detachable === true) query.push(['detachable', 'true']);
  if (init.tty) {
    query.push(['tty', 'true']);
    if (init.cols !== undefined && init.rows !== undefined) {
      query.push(['cols', String(init.cols)], ['rows', String(init.rows)]);
    }
  }
  if (init.dir !== undefined) query.push(['dir', init.dir]);
  for (const pair of init.env ?? []) query.push(['env', pair]);
  return query;
}

/** Prefixes data with a stream id. */
export function frame(stream: number, data?: Uint8Array): Buffer {
  return data === undefined ? Buffer.of(stream) : Buffer.concat([Buffer.of(stream), data]);
}

/** Pipes `io` through an open (possibly paused) exec/attach socket until the exit, a detach or a close. */
export function bridge(ws: WebSocket, io: Io, opts: BridgeOptions): Promise<BridgeResult> {
  const { stdin, stdout, stderr } = io;
  const detachKey = stdin.isTTY === true ? opts.detachKey : undefined;

  return new Promise<BridgeResult>((resolve) => {
    let done = false;
    let started = false;
    let tty = opts.tty === true;
    let raw = false;
    let sessionId: string | undefined;
    let lastError: Error | undefined;
    const blocked = new Set<NodeJS.WriteStream>();

    const restoreTerminal = (): void => {
      if (raw) stdin.setRawMode(false);
    };
    const finish = (result: BridgeResult): void => {
      if (done) return;
      done = true;
      stdin.off('data', onData).off('end', onEnd).off('error', onEnd);
      stdin.pause();
      stdout.off('resize', onResize);
      for (const signal of SIGNALS) process.off(signal, onSignal);
      process.off('exit', restoreTerminal);
      restoreTerminal();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close();
      resolve(result);
    };

    const send = (data: Buffer | string): void => {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(data, () => {
        if (!done && stdin.isPaused() && ws.bufferedAmount < LOW_WATER) stdin.resume();
      });
      // Bounded: a slow socket stops us reading stdin rather than buffering without limit.
      if (ws.bufferedAmount > HIGH_WATER) stdin.pause();
    };
    const sendInput = (data: Buffer): void => send(tty ? data : frame(STREAM.stdin, data));
    const sendSize = (): void => {
      if (stdout.isTTY !== true || !(stdout.columns > 0 && stdout.rows > 0)) return;
      send(JSON.stringify({ type: 'resize', cols: stdout.columns, rows: stdout.rows }));
    };

    const onData = (chunk: Buffer | string): void => {
      const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const at = detachKey === undefined || !tty ? -1 : data.indexOf(detachKey);
      if (at >= 0) {
        if (at > 0) sendInput(data.subarray(0, at));
        finish({ kind: 'detached', sessionId });
        return;
      }
      if (data.length > 0) sendInput(data);
    };
    const onEnd = (): void => {
      if (!tty) send(frame(STREAM.eof));
    };
    const onResize = (): void => sendSize();
    const onSignal = (signal: NodeJS.Signals): void => {
      // Only installed in raw mode: restore the terminal instead of dying with it raw.
      finish({ kind: 'exit', code: 128 + (SIGNAL_NUMBERS[signal] ?? 15) });
    };

    const write = (stream: NodeJS.WriteStream, data: Buffer): void => {
      if (stream.write(data) || blocked.has(stream)) return;
      // Stop reading the socket until the terminal or pipe catches up.
      blocked.add(stream);
      ws.pause();
      stream.once('drain', () => {
        blocked.delete(stream);
        if (blocked.size === 0) ws.resume();
      });
    };

    /** Local side on: raw terminal, resize and stdin. Once the mode is known. */
    const start = (): void => {
      if (started) return;
      started = true;
      raw = tty && stdin.isTTY === true;
      if (raw) {
        stdin.setRawMode(true);
        process.once('exit', restoreTerminal);
        for (const signal of SIGNALS) process.on(signal, onSignal);
      }
      if (tty) {
        stdout.on('resize', onResize);
        if (opts.sendInitialSize === true) sendSize();
      }
      stdin.on('data', onData).on('end', onEnd).on('error', onEnd);
      stdin.resume();
    };

    ws.on('message', (data, isBinary) => {
      if (done) return;
      const buf = toBuffer(data);
      if (!isBinary) {
        const message = textMessage(buf);
        if (message?.type === 'session_info') {
          if (typeof message.session_id === 'number' || typeof message.session_id === 'string') sessionId = String(message.session_id);
          if (opts.tty === 'auto') tty = message.tty === true;
          start();
        } else if (message?.type === 'exit' && typeof message.exit_code === 'number') {
          finish({ kind: 'exit', code: message.exit_code });
        } else if ((message?.type === 'port_opened' || message?.type === 'port_closed') && Number.isInteger(message.port)) {
          const port = message.port as number;
          if (port > 0 && port < 65536) opts.onPort?.({ type: message.type, port });
        }
        return;
      }
      if (tty) {
        write(stdout, buf);
        return;
      }
      const payload = buf.subarray(1);
      switch (buf[0]) {
        case STREAM.stdout:
          write(stdout, payload);
          break;
        case STREAM.stderr:
          write(stderr, payload);
          break;
        case STREAM.exit:
          finish({ kind: 'exit', code: payload[0] ?? 1 });
          break;
        default:
          // Unknown or client-only stream ids are ignored, as the protocol may grow.
          break;
      }
    });
    ws.on('error', (err) => {
      lastError = err;
    });
    ws.on('close', (code, reason) => {
      const why = reason.toString('utf8') || lastError?.message || '';
      finish({ kind: 'lost', sessionId, code, reason: why });
    });

    if (opts.tty !== 'auto') start();
    ws.resume();
  });
}

/** Signals that end a raw-mode bridge cleanly. */
const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
/** Numbers of those signals, for the 128+n exit status. */
const SIGNAL_NUMBERS: Readonly<Partial<Record<NodeJS.Signals, number>>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** Joins the shapes a ws message can take into one Buffer. */
export function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** A JSON text message from the server (session_info, exit, port events), else undefined. */
function textMessage(text: Buffer): Record<string, unknown> | undefined {
  try {
    const message = JSON.parse(text.toString('utf8')) as unknown;
    return typeof message === 'object' && message !== null ? (message as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
