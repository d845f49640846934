import type net from 'node:net';
import { coded } from './errors.ts';
import { accept, STREAMING, type Handler, type Request } from './ops.ts';
import type { ServiceLogEvent } from './service-log.ts';
import { parseServiceSpec, parseSignal } from './service-spec.ts';
import { INSIDE_LOG_DIR, STOP_TIMEOUT_MS, type ServiceManager } from './services.ts';


/** The longest a stream follows a service (the API bounds what it asks for). */
const MAX_FOLLOW_MS = 24 * 3600_000;
const MAX_STOP_TIMEOUT_MS = 300_000;
const MAX_LINES = 10_000;
/** Output is dropped while this much waits to be sent: a slow reader must not grow sprite-init's memory. */
const MAX_BUFFERED = 1024 * 1024;

/**
 * The control socket's service ops. `services.stream` acts on a service (put, start, stop, restart)
 * or reads its log, answers like any request (so a missing service or a bad definition fails
 * before anything streams), then writes NDJSON events: what the action caused, the service's
 * output for `durationMs`, and a closing `complete`.
 */
export function serviceHandlers(services: ServiceManager): Record<string, Handler> {
  return {
    'services.list': () => services.list(),
    'services.get': (request) => services.get(name(request)),
    'services.delete': async (request) => {
      await services.remove(name(request));
      return null;
    },
    'services.signal': (request) => {
      services.signal(name(request), parseSignal(request.signal));
      return null;
    },
    'services.stream': async (request, socket) => {
      await stream(services, request, socket);
      return STREAMING;
    },
  };
}

async function stream(services: ServiceManager, request: Request, socket: net.Socket): Promise<void> {
  const service = name(request);
  const durationMs = bounded(request.durationMs ?? 0, 0, MAX_FOLLOW_MS);
  const timeoutMs = bounded(request.timeoutMs ?? STOP_TIMEOUT_MS, 0, MAX_STOP_TIMEOUT_MS);
  const queued: ServiceLogEvent[] = [];
  let write = (event: ServiceLogEvent): void => void queued.push(event);
  let unsubscribe = (): void => undefined;
  // A listener added right after an action still sees all it caused: output and `started` come from I/O, later.
  const listen = (): void => {
    unsubscribe = services.events(service).subscribe((event) => write(event));
  };
  try {
    switch (request.action) {
      case 'put':
        await services.put(parseServiceSpec({ ...(typeof request.spec === 'object' ? request.spec : {}), name: service }));
        listen();
        break;
      case 'start':
        listen();
        await services.start(service);
        break;
      case 'restart':
        listen();
        await services.restart(service, timeoutMs);
        break;
      case 'stop':
        listen();
        await services.stop(service, timeoutMs);
        break;
      case 'logs':
        queued.push(...services.events(service).tail(bounded(request.lines ?? 100, 0, MAX_LINES)));
        if (durationMs > 0) listen();
        break;
      default:
        throw coded('ERR_BAD_REQUEST', `unknown service action ${String(request.action)}`);
    }
  } catch (error) {
    unsubscribe();
    throw error;
  }
  accept(socket);
  const send = (event: ServiceLogEvent): void => {
    const output = event.type === 'stdout' || event.type === 'stderr';
    if (!socket.writable || (output && socket.writableLength > MAX_BUFFERED)) return;
    socket.write(`${JSON.stringify(event)}\n`);
  };
  for (const event of queued) send(event);
  write = send;
  if (request.action !== 'stop' && durationMs > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, durationMs);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  unsubscribe();
  const log = `${INSIDE_LOG_DIR}/${service}.log`;
  send({ type: 'complete', timestamp: Date.now(), log_files: { stdout: log, stderr: log } });
  socket.end();
}

function name(request: Request): string {
  if (typeof request.name !== 'string' || request.name.length === 0) throw coded('ERR_BAD_REQUEST', 'name must be a non-empty string');
  return request.name;
}

function bounded(value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw coded('ERR_BAD_REQUEST', `expected a number from ${min} to ${max}`);
  return Math.min(max, Math.max(min, Math.floor(value)));
}
