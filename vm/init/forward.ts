import net from 'node:net';

/** Pipes `client` to `127.0.0.1:port` inside the sprite's network namespace, closing both together. */
export function forwardToPort(client: net.Socket, port: number): void {
  pipeBoth(client, net.connect({ host: '127.0.0.1', port }));
}

/** Pipes two sockets both ways, closing both together. */
export function pipeBoth(client: net.Socket, upstream: net.Socket): void {
  upstream.on('error', () => client.destroy());
  client.on('error', () => upstream.destroy());
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
}

// A port nobody answers on (a firewall inside the sprite dropping SYNs) fails after this.
const CONNECT_MS = 10_000;

/**
 * Connects to `host:port` from sprite-init, which lives in the sprite's network namespace: the
 * connection reaches what a process of the sprite reaches. `localhost` tries 127.0.0.1, then ::1;
 * other hosts must be IP addresses (a name would be resolved with the host's files and resolver).
 */
export async function connectInside(host: string, port: number): Promise<net.Socket> {
  const addresses = host === 'localhost' ? ['127.0.0.1', '::1'] : [host];
  let failure: Error | undefined;
  for (const address of addresses) {
    try {
      return await connectTo(address, port);
    } catch (error) {
      failure = error as Error;
    }
  }
  throw failure ?? new Error('no address');
}

function connectTo(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(CONNECT_MS, () => socket.destroy(new Error(`connecting to ${host}:${port} timed out`)));
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
