// `sprite exec` forwards the ports its command opens: a port that starts listening inside the
// sprite while the command runs gets a listener on the same local port, until it closes.
import type { Client } from './client.ts';
import { startProxy, type RunningProxy } from './proxy.ts';

/** A port event of the exec WebSocket (`port_opened` / `port_closed`). */
export interface PortEvent {
  type: 'port_opened' | 'port_closed';
  port: number;
}

/** The local listeners of one exec; `stop` closes them all. */
export interface PortForwards {
  onEvent(event: PortEvent): void;
  stop(): Promise<void>;
}

/** Forwards each opened port to 127.0.0.1:<same port>; `note` gets one line per change (or a port taken here). */
export function forwardPorts(name: string, client: Client, note: (line: string) => void): PortForwards {
  const running = new Map<number, Promise<RunningProxy | undefined>>();
  return {
    onEvent(event) {
      if (event.type === 'port_opened' && !running.has(event.port)) {
        running.set(event.port, startProxy({ name, port: event.port, localPort: event.port }, { client, report: note }).then(
          (proxy) => {
            note(`forwarding 127.0.0.1:${event.port} to port ${event.port} in ${name}`);
            return proxy;
          },
          (err: unknown) => {
            note(`port ${event.port} opened in ${name} but 127.0.0.1:${event.port} is not free here (${(err as NodeJS.ErrnoException).code ?? String(err)}); not forwarded`);
            return undefined;
          },
        ));
      } else if (event.type === 'port_closed') {
        const proxy = running.get(event.port);
        running.delete(event.port);
        void proxy?.then((p) => p?.stop());
      }
    },
    async stop() {
      const all = [...running.values()];
      running.clear();
      await Promise.all(all.map(async (p) => (await p)?.stop()));
    },
  };
}
