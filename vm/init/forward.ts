import net from 'node:net';

/** Pipes `client` to `127.0.0.1:port` inside the sprite's network namespace, closing both together. */
export function forwardToPort(client: net.Socket, port: number): void {
  const upstream = net.connect({ host: '127.0.0.1', port });
  upstream.on('error', () => client.destroy());
  client.on('error', () => upstream.destroy());
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
}
