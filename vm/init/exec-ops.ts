/**
 * The control socket's ops of exec, sessions, port events and the port proxy. Streaming ops
 * answer `{ok: true, result}` and then keep the connection: stream and control frames for exec
 * and attach, control frames for port events and kill progress, raw bytes for a forward.
 */
import net from 'node:net';
import { controlFrame } from '../frames.ts';
import { coded } from './errors.ts';
import { accept, STREAMING, type Handler, type Request } from './ops.ts';
import { signalName } from './exec-process.ts';
import { connectInside, pipeBoth } from './forward.ts';
import type { PortWatcher } from './ports.ts';
import type { ExecRequest, Sessions } from './sessions.ts';


/** The handlers of `exec`, `attach`, `sessions.list`, `sessions.kill`, `ports.watch` and `forward`. */
export function execHandlers(sessions: Sessions, ports: PortWatcher): Record<string, Handler> {
  const session = (request: Request) => {
    const found = sessions.get(text(request.id, 'id'));
    if (!found) throw coded('ERR_SESSION_NOT_FOUND', `no exec session ${String(request.id)}`);
    return found;
  };
  return {
    exec: async (request, socket) => {
      const started = await sessions.start(parseExec(request));
      accept(socket, { id: started.id, tty: started.tty });
      started.attach(socket);
      return STREAMING;
    },
    attach: (request, socket) => {
      const found = session(request);
      accept(socket, { id: found.id, tty: found.tty });
      found.attach(socket);
      return STREAMING;
    },
    'sessions.list': () => sessions.list(),
    'sessions.kill': (request, socket) => {
      const found = session(request);
      const signal = signalName(request.signal);
      const timeoutMs = request.timeoutMs;
      if (!signal) throw coded('ERR_BAD_REQUEST', 'unknown signal');
      if (!Number.isInteger(timeoutMs) || (timeoutMs as number) < 0 || (timeoutMs as number) > 3_600_000) throw coded('ERR_BAD_REQUEST', 'timeoutMs must be 0-3600000');
      accept(socket, null);
      socket.on('error', () => undefined);
      void found.kill(signal, timeoutMs as number, (event) => socket.write(controlFrame(event))).finally(() => socket.end());
      return STREAMING;
    },
    'ports.watch': (request, socket) => {
      accept(socket, null);
      socket.on('error', () => undefined);
      const subscription = ports.subscribe((event) => socket.write(controlFrame(event)));
      socket.write(controlFrame({ type: 'port_list', ports: subscription.ports.map((port) => ({ type: 'port_opened', ...port })) }));
      socket.once('close', () => subscription.close());
      socket.resume();
      return STREAMING;
    },
    forward: async (request, socket) => {
      const port = request.port;
      if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) throw coded('ERR_BAD_REQUEST', 'port must be 1-65535');
      const host = request.host ?? 'localhost';
      if (host !== 'localhost' && net.isIP(String(host)) === 0) throw coded('ERR_BAD_REQUEST', 'host must be localhost or an IP address');
      let upstream: net.Socket;
      try {
        upstream = await connectInside(host as string, port as number);
      } catch (error) {
        throw coded('ERR_PROXY_CONNECT', `cannot connect to ${String(host)}:${String(port)} inside the sprite: ${(error as Error).message}`);
      }
      accept(socket, null);
      pipeBoth(socket, upstream);
      return STREAMING;
    },
  };
}

/** Validates an exec request from the peer (which validated the client's query already). */
function parseExec(request: Request): ExecRequest {
  const command = request.command;
  if (!Array.isArray(command) || command.length === 0 || !command.every((c) => typeof c === 'string')) {
    throw coded('ERR_BAD_REQUEST', 'command must be a non-empty array of strings');
  }
  const env = request.env ?? {};
  if (typeof env !== 'object' || env === null || !Object.values(env).every((v) => typeof v === 'string')) throw coded('ERR_BAD_REQUEST', 'env must map names to strings');
  const dir = request.dir === undefined ? undefined : text(request.dir, 'dir');
  const max = request.maxRunAfterDisconnectMs ?? null;
  if (max !== null && !(Number.isInteger(max) && (max as number) >= 0)) throw coded('ERR_BAD_REQUEST', 'maxRunAfterDisconnectMs must be a whole number of ms');
  return {
    command: command as string[],
    env: env as Record<string, string>,
    dir,
    tty: request.tty === true,
    size: { cols: size(request.cols, 80), rows: size(request.rows, 24) },
    stdin: request.stdin !== false,
    policy: { detachable: request.detachable === true, maxRunAfterDisconnectMs: max as number | null },
  };
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw coded('ERR_BAD_REQUEST', `${field} must be a non-empty string`);
  return value;
}

function size(value: unknown, fallback: number): number {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) <= 1000 ? (value as number) : fallback;
}
